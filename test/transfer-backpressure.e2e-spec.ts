import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Response } from 'supertest';
import { LedgerClient, expectProblem } from './support/ledger-client.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// Backpressure of POST /transfers, end to end (the app as main.ts builds it, a real PostgreSQL): with
// the transfer process held still, accepted transfers pile up as pending until the bound
// (TRANSFER_MAX_BACKLOG, tiny here); from then on a request is refused with 503 TRANSFER_BACKLOG_FULL
// and Retry-After, and writes nothing (no event, no idempotency record); once the process resumes and
// drains the backlog, requests are accepted again.
//
// The process is held still the way a stuck instance would hold it: another owner takes its lease
// (every checkpoint row of `transfer-process`, however many segments it has), so the runner of this
// app may not apply anything; releasing the lease lets the runner take it back on its next poll.

const MAX_BACKLOG = 5;
const HOLDER = 'backpressure-test-holder';

let t: TestApp;
let ledger: LedgerClient;
beforeAll(async () => {
  t = await startTestApp({
    TRANSFER_MAX_BACKLOG: String(MAX_BACKLOG),
    TRANSFER_BACKLOG_REFRESH_MS: '50',
    PROJECTION_POLL_INTERVAL_MS: '100',
  });
  ledger = new LedgerClient(t);
});
afterAll(() => t.close());

async function holdTransferProcess(): Promise<void> {
  const rows = await t.dataSource.query(
    `UPDATE projection_checkpoints
       SET lease_owner = $1, lease_token = lease_token + 1, lease_expires_at = clock_timestamp() + interval '1 hour'
     WHERE name LIKE 'transfer-process%' RETURNING name`,
    [HOLDER],
  );
  expect(rows[0].length).toBeGreaterThan(0);
}

async function releaseTransferProcess(): Promise<void> {
  await t.dataSource.query(`UPDATE projection_checkpoints SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = $1`, [
    HOLDER,
  ]);
}

const count = async (sql: string): Promise<number> => Number((await t.dataSource.query(sql))[0].count);

describe('POST /transfers under a full backlog', () => {
  it('flips to 503 TRANSFER_BACKLOG_FULL with Retry-After, writes nothing, and flips back once the backlog drains', async () => {
    const source = await ledger.openWith(10_000);
    const target = await ledger.open();
    await ledger.settled((await ledger.transfer(source.id, target.id, 1)).id); // the process runs

    await holdTransferProcess();
    const accepted: string[] = [];
    let refusal: Response | undefined;
    // The bound is approximate (a cached count, a projection behind the log): a few more than
    // MAX_BACKLOG may get in, never fewer; a generous cap only guards against never refusing.
    for (let attempt = 0; attempt < 200 && !refusal; attempt++) {
      const response = await t.http.post('/transfers').send({ fromAccountId: source.id, toAccountId: target.id, amount: 1 });
      if (response.status === 202) accepted.push(response.body.id);
      else refusal = response;
      await sleep(10);
    }
    expect(refusal?.status).toBe(503);
    expect(accepted.length).toBeGreaterThanOrEqual(MAX_BACKLOG);
    const problem = expectProblem(refusal!, 503, 'TRANSFER_BACKLOG_FULL');
    expect(problem).toEqual(expect.objectContaining({ maxBacklog: MAX_BACKLOG, pending: expect.any(Number) }));
    expect(problem.pending).toBeGreaterThanOrEqual(MAX_BACKLOG);
    const retryAfter = Number(refusal!.headers['retry-after']);
    expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60).toBe(true);

    // Refused requests write nothing: not an event, not an idempotency record.
    const eventsBefore = await count('SELECT count(*) FROM events');
    const keysBefore = await count('SELECT count(*) FROM idempotency_keys');
    for (let i = 0; i < 5; i++) {
      const response = await t.http
        .post('/transfers')
        .set('Idempotency-Key', `backpressure-${i}`)
        .send({ fromAccountId: source.id, toAccountId: target.id, amount: 1 });
      expectProblem(response, 503, 'TRANSFER_BACKLOG_FULL');
      expect(response.headers['retry-after']).toMatch(/^\d+$/);
    }
    expect(await count('SELECT count(*) FROM events')).toBe(eventsBefore);
    expect(await count('SELECT count(*) FROM idempotency_keys')).toBe(keysBefore);
    // Validation still comes first: a bad body is a 400, not a 503.
    expectProblem(await t.http.post('/transfers').send({ fromAccountId: source.id, amount: 1 }), 400, 'VALIDATION_FAILED');

    // The process resumes: every accepted transfer settles, then requests are accepted again.
    await releaseTransferProcess();
    for (const id of accepted) expect((await ledger.settled(id, 60_000)).status).toBe('completed');
    const deadline = Date.now() + 30_000;
    let again: Response;
    for (;;) {
      again = await t.http.post('/transfers').send({ fromAccountId: source.id, toAccountId: target.id, amount: 1 });
      if (again.status !== 503 || Date.now() > deadline) break;
      await sleep(50);
    }
    expect(again.status).toBe(202);
    expect((await ledger.settled(again.body.id)).status).toBe('completed');
    // Money moved once per accepted transfer, none for a refused one.
    expect((await ledger.account(source.id)).balance).toBe(10_000 - 1 - accepted.length - 1);
  }, 120_000);
});
