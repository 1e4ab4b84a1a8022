import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { type AppProcess, call, startAppProcess } from './support/app-process.js';
import { checkpointRow, rows, waitUntilCaughtUp } from './support/projection-fixtures.js';
import { openAccounts } from './support/relay-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

/**
 * Review 2: segments x reaction concurrency far above the pool (4 segments x 8 lanes on a pool of
 * 3): the transfer process must still settle every transfer (no pool deadlock), with no failure.
 */
describe('reaction lanes on a small pool', () => {
  let database: TestDatabase;
  let client: pg.Pool;
  let app: AppProcess | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
    client = new pg.Pool({ connectionString: database.url, max: 2 });
  }, 60_000);

  afterAll(async () => {
    await app?.kill();
    await client?.end();
    await database?.drop();
  });

  it('settles every transfer', async () => {
    app = await startAppProcess(database.url, {
      DATABASE_POOL_SIZE: '3',
      PROJECTION_SEGMENTS: '4',
      PROJECTION_REACTION_CONCURRENCY: '8',
    });
    const accounts = await openAccounts(app.url, 16);
    for (const id of accounts)
      expect((await call(app.url, 'POST', `/accounts/${id}/deposits`, { amount: 100_000 })).status).toBeLessThan(300);
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 8 }, async (_, worker) => {
        for (let i = 0; i < 25; i++) {
          const from = accounts[(worker * 2 + i) % accounts.length];
          const to = accounts[(worker * 2 + i + 5) % accounts.length];
          const response = await call(app!.url, 'POST', '/transfers', { fromAccountId: from, toAccountId: to, amount: 1 });
          expect(response.status).toBeLessThan(300);
        }
      }),
    );
    await waitUntilCaughtUp(client, ['transfer-process'], 90_000);
    const row = await checkpointRow(client, 'transfer-process');
    const statuses = await rows<{ status: string; n: string }>(
      client,
      `SELECT type AS status, count(*)::text AS n FROM events WHERE stream_id LIKE 'transfer-%' GROUP BY type ORDER BY type`,
    );
    console.log(`settled in ${Date.now() - started} ms; status ${row?.status}; ${JSON.stringify(statuses)}`);
    expect(row?.status).toBe('running');
  }, 180_000);
});
