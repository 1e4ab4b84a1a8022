import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { applyBalanceEvent, createBalancesTable } from '../src/consumer/balances-consumer.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const SCHEMA = 'broker_consumer';

describe('broker_balances: apply only the next version of each account', () => {
  let database: TestDatabase;
  let pool: pg.Pool;

  beforeAll(async () => {
    database = await createTestDatabase();
    pool = new pg.Pool({ connectionString: database.url, max: 2 });
    await createBalancesTable(pool, SCHEMA);
    await createBalancesTable(pool, SCHEMA); // idempotent: every start runs it
  });

  afterAll(async () => {
    await pool?.end();
    await database?.drop();
  });

  it('skips redeliveries and gaps, and applies the missing version when it comes', async () => {
    const id = randomUUID();
    const event = (version: number, balanceAfter?: number) => ({
      streamId: `account-${id}`,
      version,
      data: balanceAfter === undefined ? {} : { balanceAfter },
    });
    const row = async () =>
      (await pool.query(`SELECT balance::int AS balance, version FROM ${SCHEMA}.broker_balances WHERE account_id = $1`, [id])).rows[0];

    expect(await applyBalanceEvent(pool, SCHEMA, event(1))).toBe('applied'); // opened: balance 0
    expect(await applyBalanceEvent(pool, SCHEMA, event(2, 500))).toBe('applied');
    expect(await applyBalanceEvent(pool, SCHEMA, event(2, 500))).toBe('duplicate');
    expect(await applyBalanceEvent(pool, SCHEMA, event(1))).toBe('duplicate');
    expect(await applyBalanceEvent(pool, SCHEMA, event(4, 900))).toBe('gap');
    expect(await row()).toEqual({ balance: 500, version: 2 });
    expect(await applyBalanceEvent(pool, SCHEMA, event(3, 300))).toBe('applied');
    expect(await applyBalanceEvent(pool, SCHEMA, event(4, 900))).toBe('applied');
    expect(await applyBalanceEvent(pool, SCHEMA, event(5))).toBe('applied'); // e.g. settled: no balance change
    expect(await row()).toEqual({ balance: 900, version: 5 });
  });

  it('a gap before the first version leaves no row behind', async () => {
    const id = randomUUID();
    expect(await applyBalanceEvent(pool, SCHEMA, { streamId: `account-${id}`, version: 2, data: { balanceAfter: 10 } })).toBe('gap');
    expect((await pool.query(`SELECT 1 FROM ${SCHEMA}.broker_balances WHERE account_id = $1`, [id])).rowCount).toBe(0);
  });
});
