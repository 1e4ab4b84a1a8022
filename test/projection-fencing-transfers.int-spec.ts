import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { type AppProcess, call, startAppProcess } from './support/app-process.js';
import { foldLedger, rowsOf, waitUntilSettled } from './support/ledger-fold.js';
import { eventually, seededRandom } from './support/projection-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

/**
 * The transfer process manager under a short lease, run by two service processes (dist/src/main.js)
 * on one database: 2,000 transfers requested through both while deposits keep coming, with
 * PROJECTION_LEASE_TTL_MS=1000 — a backlog batch of TransferRequested (about 15 round trips each)
 * takes far longer than the lease. Every transfer must settle (completed or failed), money is
 * conserved (the balances add up to the deposits, nothing is left in flight), and no transfer has
 * any account leg twice: steps the lease holder makes are fenced, a holder that lost its lease
 * commits none, and the next one resumes from the checkpoint.
 */

const TRANSFERS = 2_000;
const ACCOUNTS = 30;
const IN_FLIGHT = 16;

async function inParallel(tasks: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, tasks.length) }, async () => {
      while (next < tasks.length) await tasks[next++]();
    }),
  );
}

/** Transfers whose stream has neither completed nor failed yet. */
async function pendingTransfers(client: pg.Pool): Promise<number> {
  const [row] = await rowsOf<{ count: number }>(
    client,
    `SELECT count(*)::int AS count FROM (
       SELECT stream_id FROM events WHERE stream_id LIKE 'transfer-%' GROUP BY stream_id
       HAVING NOT bool_or(type IN ('transfers.TransferCompleted', 'transfers.TransferFailed'))) open_transfers`,
  );
  return row.count;
}

describe('2,000 transfers through two service processes with a one-second lease', () => {
  let database: TestDatabase;
  let client: pg.Pool;
  const processes: AppProcess[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    client = new pg.Pool({ connectionString: database.url, max: 4 });
    const env = { PROJECTION_LEASE_TTL_MS: '1000', PROJECTION_POLL_INTERVAL_MS: '100', READ_YOUR_WRITES_TIMEOUT_MS: '15000' };
    processes.push(await startAppProcess(database.url, env)); // migrates first
    processes.push(await startAppProcess(database.url, env));
  });
  afterAll(async () => {
    for (const process of processes) await process.kill();
    await client?.end();
    await database?.drop();
  });

  it('all settle, money is conserved, and no transfer has a leg twice', async () => {
    const random = seededRandom(12);
    const via = (index: number) => processes[index % 2].url;
    const accounts: string[] = [];
    let deposited = 0;
    const deposit = async (index: number, id: string, amount: number) => {
      const response = await call(via(index), 'POST', `/accounts/${id}/deposits`, { amount });
      if (response.status === 409 && response.body?.code === 'CONCURRENCY_CONFLICT') return; // lost every retry: nothing written
      expect({ status: response.status, body: response.body }).toMatchObject({ status: 200 });
      deposited += amount;
    };
    for (let index = 0; index < ACCOUNTS; index++) {
      const opened = await call(via(index), 'POST', '/accounts', { ownerName: `Fenced ${index}`, currency: 'EUR' });
      expect(opened.status).toBe(201);
      accounts.push(opened.body.id);
      await deposit(index, opened.body.id, 100 + Math.floor(random() * 500));
    }

    // Transfers through both processes, many for more than the source holds at first: each is
    // refused or passes depending on the deposits that keep coming in, through both processes, until
    // every transfer has ended (a reaction run twice at once, by a holder that lost its lease and
    // its successor, could decide both ways: the debit refused by one, accepted by the other).
    const requested: string[] = [];
    const tasks: Array<() => Promise<void>> = [];
    for (let index = 0; index < TRANSFERS; index++) {
      const from = accounts[Math.floor(random() * ACCOUNTS)];
      let to = accounts[Math.floor(random() * ACCOUNTS)];
      while (to === from) to = accounts[Math.floor(random() * ACCOUNTS)];
      const amount = 1 + Math.floor(random() * 900);
      tasks.push(async () => {
        const response = await call(via(index), 'POST', '/transfers', { fromAccountId: from, toAccountId: to, amount });
        expect({ status: response.status, body: response.body }).toMatchObject({ status: 202 });
        requested.push(response.body.id);
      });
    }
    let depositing = true;
    const depositor = (async () => {
      for (let index = 0; depositing; index++) {
        await deposit(index, accounts[Math.floor(random() * ACCOUNTS)], 1 + Math.floor(random() * 300));
        await sleep(10);
      }
    })();
    try {
      await inParallel(tasks, IN_FLIGHT);
      expect(requested).toHaveLength(TRANSFERS);
      await eventually('every transfer to end', async () => ((await pendingTransfers(client)) === 0 ? true : undefined), 300_000, 200);
    } finally {
      depositing = false;
      await depositor;
    }
    await waitUntilSettled(client, 60_000);

    const fold = await foldLedger(client);
    expect(fold.violations).toEqual([]);
    const outcomes = await rowsOf<{ status: string; n: number }>(
      client,
      `SELECT status, count(*)::int AS n FROM transfers GROUP BY status`,
    );
    expect(outcomes.filter((row) => row.status === 'pending')).toEqual([]);
    expect(outcomes.reduce((sum, row) => sum + row.n, 0)).toBe(TRANSFERS);
    expect(outcomes.find((row) => row.status === 'completed')?.n ?? 0).toBeGreaterThan(0);

    // Conserved: the balances add up to the deposits; nothing is in flight.
    const balances = [...fold.accounts.values()].reduce((sum, account) => sum + account.balance, 0);
    expect(balances).toBe(deposited);
    expect([...fold.inFlight.entries()].filter(([, amount]) => amount !== 0)).toEqual([]);
    const [summaries] = await rowsOf<{ total: string }>(client, 'SELECT sum(balance)::text AS total FROM account_summaries');
    expect(Number(summaries.total)).toBe(deposited);

    // No leg twice, straight from the log.
    const twice = await rowsOf<{ transfer_id: string; type: string; n: number }>(
      client,
      `SELECT data->>'transferId' AS transfer_id, type, count(*)::int AS n FROM events
       WHERE type IN ('accounts.TransferDebited', 'accounts.TransferCredited', 'accounts.TransferRefunded', 'accounts.TransferSettled')
       GROUP BY 1, 2 HAVING count(*) > 1`,
    );
    expect(twice).toEqual([]);
    for (const process of processes) expect(process.child.exitCode).toBeNull(); // both still running
  }, 600_000);
});
