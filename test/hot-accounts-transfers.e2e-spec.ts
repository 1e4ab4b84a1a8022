import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { LedgerClient } from './support/ledger-client.js';
import { foldAsTables, foldLedger, readTables, rowsOf, waitUntilSettled } from './support/ledger-fold.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// Review of issue 15 (an account step and the transfer's record of it in one flat unit of work):
// the worst contention it can meet. Every transfer goes between the same two accounts, half of them
// A → B and half B → A, all requested at once, with the process manager in 8 segments of 8 lanes
// each: up to 64 units of work at a time, each holding one of the two accounts' next version while
// it writes its transfer's stream. A unit of work that loses the race restarts whole (a unique
// violation aborts its transaction); opposite transfers must not deadlock (each unit of work
// writes one account; the credit is a transaction of its own); and no segment may stop for
// having lost races (PROJECTION_MAX_ATTEMPTS) — which would leave money in flight.
// Then: every transfer completed, no money created or lost, the log's fold sound, every read model
// equal to it.

const TRANSFERS_EACH_WAY = 60;
const OPENING_BALANCE = 100_000;

describe('opposite transfers between two hot accounts, all at once', () => {
  let t: TestApp;
  let client: LedgerClient;

  beforeAll(async () => {
    t = await startTestApp({
      PROJECTION_SEGMENTS_TRANSFER_PROCESS: '8',
      PROJECTION_REACTION_CONCURRENCY: '8',
      LOG_LEVEL: 'error',
    });
    client = new LedgerClient(t);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('completes every transfer once, conserves money, and stops no segment of the process manager', async () => {
    const a = await client.openWith(OPENING_BALANCE);
    const b = await client.openWith(OPENING_BALANCE);
    const requests = Array.from({ length: 2 * TRANSFERS_EACH_WAY }, (_, index) =>
      index % 2 === 0 ? client.transfer(a.id, b.id, 1 + (index % 7)) : client.transfer(b.id, a.id, 1 + (index % 5)),
    );
    const transfers = await Promise.all(requests);

    await waitUntilSettled(t.dataSource, 120_000); // throws if a segment stopped
    const statuses = await rowsOf<{ status: string; count: number }>(
      t.dataSource,
      `SELECT status, count(*)::int AS count FROM projection_checkpoints WHERE projection = 'transfer-process' GROUP BY status`,
    );
    expect(statuses).toEqual([{ status: 'running', count: 8 }]);

    for (const transfer of transfers) expect((await client.settled(transfer.id)).status).toBe('completed');
    const accountA = await client.account(a.id);
    const accountB = await client.account(b.id);
    expect(accountA.balance + accountB.balance).toBe(2 * OPENING_BALANCE);
    let expectedA = OPENING_BALANCE;
    for (let index = 0; index < 2 * TRANSFERS_EACH_WAY; index++) {
      expectedA += index % 2 === 0 ? -(1 + (index % 7)) : 1 + (index % 5);
    }
    expect(accountA.balance).toBe(expectedA);

    const fold = await foldLedger(t.dataSource);
    expect(fold.violations).toEqual([]);
    expect(await readTables(t.dataSource)).toEqual(foldAsTables(fold));

    // Snapshots (every 100 account events by default), now written after their unit of work
    // commits: each one's balance and transfer legs are those of the log at its version.
    const snapshots = await rowsOf<{
      stream_id: string;
      version: number;
      balance: number;
      steps: number;
      logBalance: number;
      logSteps: number;
    }>(
      t.dataSource,
      `SELECT s.stream_id, s.version, (s.state->>'balance')::int AS balance, jsonb_array_length(s.state->'transferSteps') AS steps,
              (SELECT (e.data->>'balanceAfter')::int FROM events e WHERE e.stream_id = s.stream_id AND e.version <= s.version
                 AND e.data ? 'balanceAfter' ORDER BY e.version DESC LIMIT 1) AS "logBalance",
              (SELECT count(*)::int FROM events e WHERE e.stream_id = s.stream_id AND e.version <= s.version
                 AND e.type = ANY ('{accounts.TransferDebited,accounts.TransferCredited,accounts.TransferSettled,accounts.TransferRefunded}')) AS "logSteps"
         FROM snapshots s WHERE s.stream_id = ANY ($1)`,
      [[`account-${a.id}`, `account-${b.id}`]],
    );
    expect(snapshots.length).toBeGreaterThanOrEqual(2);
    for (const snapshot of snapshots) {
      expect({ balance: snapshot.balance, steps: snapshot.steps }).toEqual({ balance: snapshot.logBalance, steps: snapshot.logSteps });
    }
  }, 300_000);

  it('replayed from the start of the log in every segment while a second wave is in flight, moves no money twice', async () => {
    const [a, b] = await Promise.all([client.openWith(OPENING_BALANCE), client.openWith(OPENING_BALANCE)]);
    const bystander = await client.open();
    const amountOf = (index: number) => 1 + (index % 3);
    const requests = Array.from({ length: 2 * TRANSFERS_EACH_WAY }, (_, index) =>
      index % 2 === 0 ? client.transfer(a.id, b.id, amountOf(index)) : client.transfer(b.id, a.id, amountOf(index)),
    );
    // Every segment of the process manager back to the start of the log, while the wave arrives:
    // each then reacts again to every transfer it ever saw, the settled ones and the ones in flight.
    const reset = await t.dataSource.query(
      `UPDATE projection_checkpoints SET transaction_id = '0', position = 0 WHERE projection = 'transfer-process'`,
    );
    expect(reset[1]).toBe(8);
    const transfers = await Promise.all(requests);
    // An append wakes the runners up. Not to a hot account: while up to 64 units of work race for
    // it, a client's deposit there can still lose its race to them 10 times and be answered 409
    // CONCURRENCY_CONFLICT ("retry the request"; seen in review, rarer since the stream lanes).
    await client.deposit(bystander.id, 1);
    await waitUntilSettled(t.dataSource, 120_000);

    for (const transfer of transfers) expect((await client.settled(transfer.id)).status).toBe('completed');
    let expectedA = OPENING_BALANCE;
    for (let index = 0; index < 2 * TRANSFERS_EACH_WAY; index++) expectedA += index % 2 === 0 ? -amountOf(index) : amountOf(index);
    expect((await client.account(a.id)).balance).toBe(expectedA);
    expect((await client.account(b.id)).balance).toBe(2 * OPENING_BALANCE - expectedA);
    const fold = await foldLedger(t.dataSource);
    expect(fold.violations).toEqual([]); // no leg twice, legs matching each transfer's stream
    expect(await readTables(t.dataSource)).toEqual(foldAsTables(fold));
  }, 300_000);
});
