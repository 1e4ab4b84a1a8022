import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { type AppProcess, startAppProcess } from './support/app-process.js';
import { type NatsServer, startNatsServer } from './support/nats-server.js';
import { waitUntilCaughtUp } from './support/projection-fixtures.js';
import { refuseOneEventThenStop, repeatedMessages } from './support/relay-refusal.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

/**
 * Review of completed_ahead: relay-refusal-restart's scenario, but the restart also changes
 * PROJECTION_SEGMENTS (1 → 2), which replaces the relay's checkpoint rows. Seen failing (5 messages
 * stored twice: the re-split dropped completed_ahead) before the layout change carried what the old
 * segments had published past the new start into the new rows.
 */
describe('relay refusal in one lane, then a restart with another segment count: duplicates of the other lanes', () => {
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

  it('publishes no event twice across a restart with another segment count after a refusal', async () => {
    const env = {
      NATS_URL: broker.url,
      PROJECTION_RETRY_BASE_MS: '1500',
      PROJECTION_MAX_ATTEMPTS: '100', // still retrying (running) when the operator restarts
      PROJECTION_SEGMENTS: '1',
      NATS_PUBLISH_CONCURRENCY: '8',
    };
    app = await startAppProcess(database.url, env);
    await refuseOneEventThenStop(app, broker.url, client);
    app = await startAppProcess(database.url, { ...env, PROJECTION_SEGMENTS: '2' });
    await waitUntilCaughtUp(client, ['nats-relay'], 30_000);
    const [{ segments }] = await client
      .query<{ segments: number }>(`SELECT max(segments) AS segments FROM projection_checkpoints WHERE projection = 'nats-relay'`)
      .then((result) => result.rows);
    expect(segments).toBe(2); // re-split

    expect(await repeatedMessages(broker.url)).toEqual([]);
  }, 90_000);
});
