import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Response } from 'supertest';
import type { DataSource, QueryRunner } from 'typeorm';
import { EventNotifier, QUERY_DATA_SOURCE } from '../src/event-sourcing/index.js';
import { reflecting } from './support/read-your-writes.js';
import { type StatementCounter, countStatements } from './support/statement-counter.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// A query with minPosition waits for its projection. It must not poll the database meanwhile: it is
// woken when the projection advances (in this process: the runner's own signal; in another instance:
// a NOTIFY) and re-checks then, with a slow fallback re-check for a lost notification.
//
// The projection is held back for a while by locking the account's read-table row (its runner's
// batch blocks on it), and the statements the waiting instance sends about checkpoints are counted.

/** Locks the account's row of account_summaries until release(): the account-summary runner cannot apply its next event. */
async function holdAccountRow(t: TestApp, id: string): Promise<{ release(): Promise<void> }> {
  const holder: QueryRunner = t.dataSource.createQueryRunner();
  await holder.connect();
  await holder.startTransaction();
  await holder.query('SELECT 1 FROM account_summaries WHERE id = $1 FOR UPDATE', [id]);
  return {
    async release() {
      await holder.commitTransaction();
      await holder.release();
    },
  };
}

/** Starts a GET /accounts/{id}?minPosition=, resolved when it answers (never rejected). */
function startWaiting(t: TestApp, id: string, position: number): Promise<Response> {
  return new Promise((resolve, reject) => {
    reflecting(t.http.get(`/accounts/${id}`), position).then(resolve, reject);
  });
}

/** While a read waits for ~1 s on a held projection: how many checkpoint statements the waiting instance sent. */
async function waitWhileHeld(
  writer: TestApp,
  reader: TestApp,
  readerSide: DataSource,
  beforeRelease: () => void = () => undefined,
): Promise<{ answer: Response; whileHeld: number; counter: StatementCounter }> {
  const opened = await writer.http.post('/accounts').send({ ownerName: 'Waiting Ada', currency: 'EUR' }).expect(201);
  await reflecting(reader.http.get(`/accounts/${opened.body.id}`), opened.body.position).expect(200);
  const hold = await holdAccountRow(writer, opened.body.id);
  let released = false;
  try {
    const deposited = await writer.http.post(`/accounts/${opened.body.id}/deposits`).send({ amount: 7 }).expect(200);
    const counter = countStatements(readerSide, /projection_checkpoints/i);
    const waiting = startWaiting(reader, opened.body.id, deposited.body.position);
    await sleep(1000); // the read waits the whole time: its projection cannot get there
    const whileHeld = counter.count;
    beforeRelease();
    await hold.release();
    released = true;
    const answer = await waiting;
    counter.stop();
    return { answer, whileHeld, counter };
  } finally {
    if (!released) await hold.release();
  }
}

describe('read-your-writes: the wait is woken, not a 20 ms poll', () => {
  describe('the projection runs in the same instance', () => {
    let t: TestApp;
    beforeAll(async () => {
      // Long poll interval and lease: the runners themselves read their checkpoint rows rarely.
      t = await startTestApp({
        READ_YOUR_WRITES_TIMEOUT_MS: '20000',
        PROJECTION_POLL_INTERVAL_MS: '10000',
        PROJECTION_LEASE_TTL_MS: '60000',
      });
    });
    afterAll(() => t?.close());

    it('answers once the projection advances, having read the checkpoint a few times in a 1 s wait, not every 20 ms', async () => {
      const { answer, whileHeld, counter } = await waitWhileHeld(t, t, t.app.get<DataSource>(QUERY_DATA_SOURCE));
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({ balance: 7, version: 2 });
      // A 20 ms poll reads it about 50 times a second; the fallback re-check (every 250 ms) about 4.
      expect({ whileHeld, texts: whileHeld > 10 ? counter.texts.slice(0, 20) : [] }).toEqual({ whileHeld: expect.any(Number), texts: [] });
      expect(whileHeld).toBeLessThanOrEqual(10);
      expect(whileHeld).toBeGreaterThan(0); // the counter does see the waiter's reads
    });
  });

  describe('the projection runs in another instance', () => {
    let leader: TestApp;
    let server: TestApp;
    beforeAll(async () => {
      leader = await startTestApp({ PROJECTION_POLL_INTERVAL_MS: '10000', PROJECTION_LEASE_TTL_MS: '60000' });
      // Serves HTTP only, on the same database: no runner in it reads checkpoints.
      server = await startTestApp({ PROJECTIONS_ENABLED: 'false', READ_YOUR_WRITES_TIMEOUT_MS: '20000' }, leader.database);
    });
    afterAll(async () => {
      await server?.close();
      await leader?.close();
    });

    it("answers once the other instance's projection advances, woken by its notification, reading the checkpoint a few times in a 1 s wait", async () => {
      const notified: string[] = [];
      const notifier = server.app.get(EventNotifier);
      const onAdvanced = (name: string) => notified.push(name);
      notifier.on('projectionAdvanced', onAdvanced);
      try {
        let notifiedWhileHeld = 0;
        const { answer, whileHeld, counter } = await waitWhileHeld(leader, server, server.app.get<DataSource>(QUERY_DATA_SOURCE), () => {
          notifiedWhileHeld = notified.length;
        });
        expect(answer.status).toBe(200);
        expect(answer.body).toMatchObject({ balance: 7, version: 2 });
        expect({ whileHeld, texts: whileHeld > 10 ? counter.texts.slice(0, 20) : [] }).toEqual({
          whileHeld: expect.any(Number),
          texts: [],
        });
        expect(whileHeld).toBeLessThanOrEqual(10);
        // The leader told the waiting instance when account-summary advanced after the row was released.
        expect(notified.slice(notifiedWhileHeld)).toContain('account-summary');
      } finally {
        notifier.off('projectionAdvanced', onAdvanced);
      }
    });
  });
});
