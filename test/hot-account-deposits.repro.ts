import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { LedgerClient } from './support/ledger-client.js';
import { waitUntilSettled } from './support/ledger-fold.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// Review of issue 15, a measurement rather than a broken guarantee (kept out of jest's testMatch;
// run: NODE_OPTIONS=--experimental-vm-modules npx jest --testMatch '**/hot-account-deposits.repro.ts').
// While the transfer process manager races for one hot account (8 segments × 8 lanes, 120 opposite
// transfers between two accounts), clients deposit to that account 40 times, 8 at a time. A
// deposit that loses its race 10 times is answered 409 CONCURRENCY_CONFLICT ("retry the request"):
// never a 500, never a partial write, but clients of a hot account are starved. The test prints how
// many were, and asserts only that each answer is 200 or 409 and that money adds up.
// Measured in review (2 runs each, same machine): 20 and 25 of 40 answered 409 at c0f7343 (flat units
// of work), 27 and 30 of 40 with src/ of 40f221e (before issue 15): starvation that predates the
// change, not made worse by it.
// Since the stream lanes (lone commands of one process take turns per stream), a deposit can lose
// only to a unit of work (the debits): 10 of 40 answered 409 before, 0 of 40 after, same machine
// (1 of 40 in the review's run); a unit of work that lost takes the lane for its next attempt.

describe('client deposits to an account the process manager is racing for', () => {
  let t: TestApp;
  let client: LedgerClient;
  beforeAll(async () => {
    t = await startTestApp({ PROJECTION_SEGMENTS_TRANSFER_PROCESS: '8', PROJECTION_REACTION_CONCURRENCY: '8', LOG_LEVEL: 'error' });
    client = new LedgerClient(t);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('are answered 200 or 409, and what was answered 200 is in the balance', async () => {
    const a = await client.openWith(100_000);
    const b = await client.openWith(100_000);
    const transfers = Array.from({ length: 120 }, (_, index) =>
      index % 2 === 0 ? client.transfer(a.id, b.id, 1) : client.transfer(b.id, a.id, 1),
    );
    const statuses: number[] = [];
    const depositors = Array.from({ length: 8 }, async () => {
      for (let index = 0; index < 5; index++) {
        const response = await t.http.post(`/accounts/${a.id}/deposits`).send({ amount: 10 });
        statuses.push(response.status);
      }
    });
    await Promise.all([...transfers, ...depositors]);
    await waitUntilSettled(t.dataSource, 120_000);
    const conflicts = statuses.filter((status) => status === 409).length;
    console.log(`deposits to the hot account: ${statuses.length}, answered 409: ${conflicts}`);
    expect(statuses.every((status) => status === 200 || status === 409)).toBe(true);
    const accepted = statuses.filter((status) => status === 200).length;
    expect((await client.account(a.id)).balance + (await client.account(b.id)).balance).toBe(200_000 + 10 * accepted);
  });
});
