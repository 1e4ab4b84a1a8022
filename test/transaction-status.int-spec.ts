// settledTransactionStatus (src/event-sourcing/transaction-status.ts) on a real connection: it waits
// for the ReadyForQuery the server still owes, and never waits for one that will not come.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { settledTransactionStatus } from '../src/event-sourcing/transaction-status.js';
import { type LateReadyProxy, startLateReadyProxy } from './support/late-ready-proxy.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const NEVER = Symbol('still waiting');
const within = <T>(promise: Promise<T>, ms: number) =>
  Promise.race([promise, new Promise<typeof NEVER>((resolve) => setTimeout(() => resolve(NEVER), ms).unref())]);

describe('settledTransactionStatus', () => {
  let database: TestDatabase;
  let proxy: LateReadyProxy;

  beforeAll(async () => {
    database = await createTestDatabase();
    proxy = await startLateReadyProxy(database.url, 30);
  });
  afterAll(async () => {
    await proxy?.close();
    await database?.drop();
  });

  async function connected(url: string): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    return client;
  }

  it("answers 'E' for a failed statement whose error arrived before its ReadyForQuery", async () => {
    const client = await connected(proxy.url);
    try {
      await client.query('BEGIN');
      await client.query('SELECT 1/0').catch(() => undefined);
      expect(client.getTransactionStatus()).toBe('T'); // what the check read before: the race
      expect(await settledTransactionStatus(client)).toBe('E');
    } finally {
      await client.end();
    }
  });

  it('does not wait for a query the driver refused before sending it (no ReadyForQuery will come)', async () => {
    const client = await connected(database.url);
    try {
      await client.query('BEGIN');
      // Values that are not an array: node-postgres refuses the query on the next tick, unsent.
      void client.query('SELECT $1', 'not-an-array' as unknown as unknown[]).catch(() => undefined);
      expect(await within(settledTransactionStatus(client), 5_000)).toBe('T');
    } finally {
      await client.query('ROLLBACK');
      await client.end();
    }
  });
});
