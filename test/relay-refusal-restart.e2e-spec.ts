import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { type AppProcess, startAppProcess } from './support/app-process.js';
import { type NatsServer, startNatsServer } from './support/nats-server.js';
import { waitUntilCaughtUp } from './support/projection-fixtures.js';
import { refuseOneEventThenStop, repeatedMessages } from './support/relay-refusal.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

/**
 * Review of issue 17 (found as a reproduction, 5 messages stored twice at 40f221e): a broker refusal
 * in one relay lane, then the routine way out — the operator raises the stream's limit and restarts
 * the service — later than the duplicate window (2 minutes in production, 1 s here). The lanes had
 * published other streams' events past the refused one; the memory of that lived in the process, so
 * the new holding republished them and the broker stored them twice. The engine now writes the
 * events completed past the checkpoint with it (projection_checkpoints.completed_ahead, migration
 * 019) and every later holder skips them.
 */
describe('relay refusal in one lane, then a restart: duplicates of the other lanes', () => {
  let database: TestDatabase;
  let client: pg.Pool;
  let broker: NatsServer;
  let app: AppProcess | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
    client = new pg.Pool({ connectionString: database.url, max: 2 });
    broker = await startNatsServer();
  }, 60_000);

  afterAll(async () => {
    await app?.kill();
    await client?.end();
    await broker?.dispose();
    await database?.drop();
  });

  it('publishes no event twice across a restart after a refusal', async () => {
    const env = {
      NATS_URL: broker.url,
      PROJECTION_RETRY_BASE_MS: '1500',
      PROJECTION_MAX_ATTEMPTS: '100', // still retrying (running) when the operator restarts
      PROJECTION_SEGMENTS: '1',
      NATS_PUBLISH_CONCURRENCY: '8',
    };
    app = await startAppProcess(database.url, env);
    await refuseOneEventThenStop(app, broker.url, client);
    app = await startAppProcess(database.url, env);
    await waitUntilCaughtUp(client, ['nats-relay'], 30_000);

    expect(await repeatedMessages(broker.url)).toEqual([]);
  }, 90_000);
});
