import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { eventually, rows } from './support/projection-fixtures.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// What an HTTP client is told when the connection of the group-commit statement carrying its deposit
// is lost (FATAL): the outcome is unknown, so never a 4xx refusal (409/412/422) that says "nothing was
// written, decide again" — a client acting on that could move the money twice. And the appends
// queued behind the lost statement still go.

describe('a deposit whose group-commit statement loses its connection', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t?.close());

  const open = async (name: string) => {
    const opened = await t.http.post('/accounts').send({ ownerName: name, currency: 'EUR' }).expect(201);
    return opened.body.id as string;
  };

  it('is answered 500 INTERNAL_ERROR as problem+json, never a refusal; nothing of it is written; the appends queued behind it are written', async () => {
    const held = await open('Held');
    const others = await Promise.all(Array.from({ length: 6 }, (_, index) => open(`Other ${index}`)));
    const other = new pg.Client({ connectionString: t.database.url });
    await other.connect();
    try {
      // Another writer holds version 2 of the account, uncommitted: the deposit's statement waits on it.
      await other.query('BEGIN');
      const eventId = randomUUID();
      await other.query(
        `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
         VALUES ($1, 2, 'accounts.MoneyDeposited', 1, $2::uuid, jsonb_build_object('accountId', $3::text, 'amount', 1, 'balanceAfter', 1),
                 jsonb_build_object('eventId', $2::text))`,
        [`account-${held}`, eventId, held],
      );
      const deposit = t.http
        .post(`/accounts/${held}/deposits`)
        .send({ amount: 500 })
        .then((answer) => answer);
      const pid = await eventually('the deposit statement to wait on the other writer', async () => {
        const [row] = await rows<{ pid: number }>(
          t.dataSource,
          `SELECT pid FROM pg_locks JOIN pg_stat_activity USING (pid)
           WHERE datname = current_database() AND locktype = 'transactionid' AND NOT granted`,
        );
        return row?.pid;
      });
      // Appends arriving now queue behind the waiting statement (one in flight).
      const queued = others.map((id) =>
        t.http
          .post(`/accounts/${id}/deposits`)
          .send({ amount: 7 })
          .then((answer) => answer),
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
      await t.dataSource.query('SELECT pg_terminate_backend($1)', [pid]);
      const answer = await deposit;
      await other.query('ROLLBACK');

      expect(answer.status).toBe(500);
      expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(answer.body).toMatchObject({ code: 'INTERNAL_ERROR', status: 500 });
      expect(
        (await rows<{ version: number }>(t.dataSource, 'SELECT version FROM events WHERE stream_id = $1', [`account-${held}`])).map(
          (row) => row.version,
        ),
      ).toEqual([1]);
      for (const queuedAnswer of await Promise.all(queued)) expect(queuedAnswer.status).toBe(200);
      // The account is usable again at once (the cache entry of the failed append was dropped).
      expect((await t.http.post(`/accounts/${held}/deposits`).send({ amount: 3 })).body).toMatchObject({ version: 2 });
    } finally {
      await other.query('ROLLBACK').catch(() => undefined);
      await other.end();
    }
  }, 60_000);
});
