import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { type AppProcess, call, startAppProcess } from './support/app-process.js';
import { type NatsServer, startNatsServer } from './support/nats-server.js';
import { rows } from './support/projection-fixtures.js';
import { openAccounts } from './support/relay-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

/**
 * Review 2: EventRelay closes in onModuleDestroy, before the engine stops its runners
 * (beforeApplicationShutdown) and while HTTP still serves. A publish in that window throws
 * RelayClosing, which the engine counts as a failed attempt of the relay (recordFailure), with the
 * broker up. Restarts under write load then stop the relay in `failed` (PROJECTION_MAX_ATTEMPTS).
 */
describe('SIGTERM with the broker up counts no relay failure', () => {
  let database: TestDatabase;
  let client: pg.Pool;
  let broker: NatsServer;
  const apps: AppProcess[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    client = new pg.Pool({ connectionString: database.url, max: 2 });
    broker = await startNatsServer();
  }, 60_000);

  afterAll(async () => {
    for (const app of apps) await app.kill();
    await client?.end();
    await broker?.dispose();
    await database?.drop();
  });

  it('a rolling restart under writes leaves the relay running with no attempt counted', async () => {
    const seen: Array<Record<string, unknown>> = [];
    for (let round = 0; round < 3; round++) {
      const app = await startAppProcess(database.url, { NATS_URL: broker.url, SHUTDOWN_DELAY_MS: '200' });
      apps.push(app);
      const accounts = await openAccounts(app.url, 2);
      let writing = true;
      const writer = (async () => {
        while (writing) {
          const response = await call(app.url, 'POST', `/accounts/${accounts[0]}/deposits`, { amount: 1 }).catch(() => undefined);
          if (!response || response.status >= 500) break;
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await app.stop();
      writing = false;
      await writer;
      const [row] = await rows<Record<string, unknown>>(
        client,
        `SELECT status, attempts, last_error FROM projection_checkpoints WHERE projection = 'nats-relay' ORDER BY attempts DESC LIMIT 1`,
      );
      seen.push(row);
    }
    console.log(JSON.stringify(seen));
    for (const row of seen) expect(row).toMatchObject({ status: 'running', attempts: 0 });
  }, 180_000);
});
