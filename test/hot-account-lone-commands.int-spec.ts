import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Response } from 'supertest';
import { accountStreamId } from '../src/accounts/account.js';
import { type TestApp, startTestApp } from './support/test-app.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

// Many clients depositing to one account at once (a payroll run, a popular merchant): every
// deposit is a lone command (no Idempotency-Key), decided on the account's state and appended at
// the next version. Before the stream lanes, the racers of one process fought each other for every
// version and a deposit that lost 10 times was answered 409 CONCURRENCY_CONFLICT although nothing
// was wrong with it (CI of 2114266, write-path-two-instances). Now the lone commands of one process
// take turns per stream: within a process none can lose a race to another, and across processes a
// lost race is retried with doubling full jitter. Every deposit here must be answered 200.

const RACERS = 60;

interface Deposited {
  readonly amount: number;
}

async function deposits(t: TestApp, id: string): Promise<Deposited[]> {
  const rows: Array<{ data: Deposited }> = await t.dataSource.query(
    `SELECT data FROM events WHERE stream_id = $1 AND type = 'accounts.MoneyDeposited' ORDER BY version`,
    [accountStreamId(id)],
  );
  return rows.map((row) => row.data);
}

function statuses(responses: readonly Response[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const response of responses) {
    const key = `${response.status}${response.body?.code ? ` ${response.body.code as string}` : ''}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

describe('lone deposits racing for one account', () => {
  let database: TestDatabase;
  let instances: TestApp[];

  beforeAll(async () => {
    database = await createTestDatabase();
    instances = [await startTestApp({}, database), await startTestApp({}, database)];
  }, 60_000);
  afterAll(async () => {
    for (const instance of instances ?? []) await instance.close();
    await database?.drop();
  });

  async function open(): Promise<string> {
    const opened = await instances[0].http.post('/accounts').send({ ownerName: 'Hot', currency: 'EUR' });
    expect(opened.status).toBe(201);
    return opened.body.id as string;
  }

  it(`${RACERS} at once on one instance: every one answered 200, each at its own version`, async () => {
    const id = await open();
    const responses = await Promise.all(
      Array.from({ length: RACERS }, (_, index) => instances[0].http.post(`/accounts/${id}/deposits`).send({ amount: index + 1 })),
    );
    expect(statuses(responses)).toEqual({ 200: RACERS });
    expect(new Set(responses.map((response) => response.body.version)).size).toBe(RACERS);
    const stored = await deposits(instances[0], id);
    expect(stored.map((event) => event.amount).sort((a, b) => a - b)).toEqual(Array.from({ length: RACERS }, (_, index) => index + 1));
  });

  it(`${RACERS} at once per instance on two instances, three times over: every one answered 200`, async () => {
    const id = await open();
    let expected = 0;
    for (let round = 0; round < 3; round++) {
      const responses = await Promise.all(
        instances.flatMap((instance, which) =>
          Array.from({ length: RACERS }, (_, index) => {
            const amount = 1 + index + which * RACERS + round * 2 * RACERS;
            expected += amount;
            return instance.http.post(`/accounts/${id}/deposits`).send({ amount });
          }),
        ),
      );
      expect(statuses(responses)).toEqual({ 200: 2 * RACERS });
    }
    const stored = await deposits(instances[0], id);
    expect(stored).toHaveLength(3 * 2 * RACERS);
    expect(stored.reduce((sum, event) => sum + event.amount, 0)).toBe(expected);
  }, 120_000);
});
