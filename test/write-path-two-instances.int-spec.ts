import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EventStore } from '../src/event-sourcing/index.js';
import { readSummaries, readTransactions, replayLedger } from './support/ledger-replay.js';
import { eventually, rows, seededRandom, waitUntilCaughtUp } from './support/projection-fixtures.js';
import { type TestApp, startTestApp } from './support/test-app.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

// Issue 14's write path under mixed load on two instances of the service on one database: each has
// its own group committer, aggregate cache (stale as soon as the other instance writes an account),
// projection runners sharing reads, and wake-ups. Lone deposits and withdrawals (group-committed,
// decided on the cache), idempotent deposits sent to both instances at once (units of work), and
// transfers (units of work of the process manager) all hit the same accounts. Afterwards: every
// acknowledged movement is in the log exactly once and no refused one is, money is conserved, the
// log lists every stream in version order, and the read tables equal a replay of the log.

const PROJECTIONS = ['account-summary', 'account-transactions'];
const ACCOUNTS = 6;
const OPENING = 10_000;
const OPERATIONS = 240;
const CONCURRENCY = 24;

describe('group commit, aggregate cache and shared reads on two instances under mixed load', () => {
  let database: TestDatabase;
  let instances: TestApp[];

  beforeAll(async () => {
    database = await createTestDatabase();
    const env = { PROJECTION_POLL_INTERVAL_MS: '200' };
    instances = [await startTestApp(env, database), await startTestApp(env, database)];
  }, 60_000);
  afterAll(async () => {
    for (const instance of instances ?? []) await instance.close();
    await database?.drop();
  });

  it('every acknowledged movement once, nothing refused written, money conserved, streams in version order, read tables = replay', async () => {
    const ids: string[] = [];
    for (let index = 0; index < ACCOUNTS; index++) {
      const app = instances[index % 2];
      const opened = await app.http.post('/accounts').send({ ownerName: `Mixed ${index}`, currency: 'EUR' });
      expect(opened.status).toBe(201);
      ids.push(opened.body.id as string);
      expect((await app.http.post(`/accounts/${opened.body.id as string}/deposits`).send({ amount: OPENING })).status).toBe(200);
    }

    const random = seededRandom(14);
    let deposited = ACCOUNTS * OPENING;
    let withdrawn = 0;
    let acknowledgedDeposits = ACCOUNTS;
    let acknowledgedWithdrawals = 0;
    const transfers: string[] = [];
    const unexpected: string[] = [];
    const expectStatus = (what: string, status: number, allowed: number[], body: unknown) => {
      if (!allowed.includes(status)) unexpected.push(`${what}: ${status} ${JSON.stringify(body)}`);
    };

    const operation = async (turn: number) => {
      const app = instances[Math.floor(random() * 2)];
      const account = ids[Math.floor(random() * ACCOUNTS)];
      const amount = 1 + Math.floor(random() * 300);
      const kind = turn % 6;
      if (kind <= 1) {
        const answer = await app.http.post(`/accounts/${account}/deposits`).send({ amount });
        expectStatus('deposit', answer.status, [200], answer.body);
        if (answer.status === 200) {
          deposited += amount;
          acknowledgedDeposits++;
        }
      } else if (kind === 2) {
        const answer = await app.http.post(`/accounts/${account}/withdrawals`).send({ amount });
        expectStatus('withdrawal', answer.status, [200, 422], answer.body);
        if (answer.status === 200) {
          withdrawn += amount;
          acknowledgedWithdrawals++;
        }
      } else if (kind === 3) {
        // The same idempotent request to both instances at once: it is written once at most.
        const key = randomUUID();
        const answers = await Promise.all(
          instances.map((instance) => instance.http.post(`/accounts/${account}/deposits`).set('Idempotency-Key', key).send({ amount })),
        );
        for (const answer of answers) expectStatus('idempotent deposit', answer.status, [200, 409], answer.body);
        if (answers.some((answer) => answer.status === 200)) {
          deposited += amount;
          acknowledgedDeposits++;
        }
      } else {
        let to = ids[Math.floor(random() * ACCOUNTS)];
        if (to === account) to = ids[(ids.indexOf(account) + 1) % ACCOUNTS];
        const answer = await app.http.post('/transfers').send({ fromAccountId: account, toAccountId: to, amount });
        expectStatus('transfer', answer.status, [201, 202], answer.body);
        if (answer.status < 300) transfers.push(answer.body.id as string);
      }
    };
    for (let turn = 0; turn < OPERATIONS; turn += CONCURRENCY) {
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, OPERATIONS - turn) }, (_, index) => operation(turn + index)));
    }
    expect(unexpected).toEqual([]);
    // The load did group appends (else this test would not be about group commit).
    expect(instances.reduce((sum, instance) => sum + instance.app.get(EventStore).groupAppend.stats.groups, 0)).toBeGreaterThan(0);

    // Every transfer reaches its outcome (the process manager runs on whichever instance leads it).
    await eventually(
      'every transfer to complete or fail',
      async () => {
        const [{ open }] = await rows<{ open: number }>(
          instances[0].dataSource,
          `SELECT count(*)::int AS open FROM events e WHERE e.stream_id = ANY($1)
             AND NOT EXISTS (SELECT 1 FROM events f WHERE f.stream_id = e.stream_id
                             AND f.type IN ('transfers.TransferCompleted', 'transfers.TransferFailed'))`,
          [transfers.map((id) => `transfer-${id}`)],
        );
        return open === 0 ? true : undefined;
      },
      60_000,
    );
    await waitUntilCaughtUp(instances[0].dataSource, PROJECTIONS, 60_000);

    const log = await rows<{ stream_id: string; version: number; type: string; amount: number | null }>(
      instances[0].dataSource,
      `SELECT stream_id, version, type, (data->>'amount')::int AS amount FROM events ORDER BY transaction_id, position`,
    );
    // The ordering invariant: in commit order, every stream's versions are 1, 2, 3 … with no gap or swap.
    const next = new Map<string, number>();
    for (const event of log) {
      expect({ stream: event.stream_id, version: event.version }).toEqual({
        stream: event.stream_id,
        version: (next.get(event.stream_id) ?? 0) + 1,
      });
      next.set(event.stream_id, event.version);
    }
    // Every acknowledged deposit and withdrawal is there exactly once, and nothing else.
    const of = (type: string) => log.filter((event) => event.type === type);
    expect(of('accounts.MoneyDeposited')).toHaveLength(acknowledgedDeposits);
    expect(of('accounts.MoneyWithdrawn')).toHaveLength(acknowledgedWithdrawals);
    expect(of('accounts.MoneyDeposited').reduce((sum, event) => sum + event.amount!, 0)).toBe(deposited);
    expect(of('accounts.MoneyWithdrawn').reduce((sum, event) => sum + event.amount!, 0)).toBe(withdrawn);

    // Money is conserved: transfers only move it, so the balances add up to deposits - withdrawals.
    const replay = await replayLedger(instances[0].dataSource);
    expect(replay.summaries.reduce((sum, row) => sum + row.balance, 0)).toBe(deposited - withdrawn);
    expect(await readSummaries(instances[0].dataSource)).toEqual(replay.summaries);
    expect(await readTransactions(instances[0].dataSource)).toEqual(replay.transactions);
  }, 240_000);
});
