import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { type AppProcess, call, startAppProcess } from './support/app-process.js';
import { type NatsServer, startNatsServer } from './support/nats-server.js';
import { checkpointRow, untilNothingHeldBack, waitUntilCaughtUp } from './support/projection-fixtures.js';
import { readJetStream } from './support/relay-fixtures.js';
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
    const open = async (ownerName: string) => {
      const response = await call(app!.url, 'POST', '/accounts', { ownerName, currency: 'EUR' });
      expect(response.status).toBe(201);
    };
    await open('x');
    let messages: Awaited<ReturnType<typeof readJetStream>> = [];
    for (let i = 0; i < 100 && messages.length === 0; i++) {
      await sleep(100);
      messages = await readJetStream(broker.url, 'LEDGER').catch(() => []);
    }
    expect(messages).toHaveLength(1);
    const headerBytes = Object.entries(messages[0].headers).reduce((sum, [k, v]) => sum + k.length + v.length + 4, 12);
    const size = JSON.stringify(messages[0].body).length + headerBytes;
    const connection = await connect({ servers: broker.url });
    try {
      const manager = await jetstreamManager(connection);
      const info = await manager.streams.info('LEDGER');
      // A bigger AccountOpened (a 100-character owner name) is refused; the small ones are not.
      await manager.streams.update('LEDGER', { ...info.config, max_msg_size: size + 50, duplicate_window: 1_000_000_000 });

      await open('y'.repeat(100));
      for (let i = 0; i < 5; i++) await open(`s${i}`);
      // The 4 s are timed from when the relay can read these events: a transaction of another test file
      // (the commit-safe horizon is server-wide) may hold them back for a while.
      await untilNothingHeldBack(client);
      await sleep(4_000); // the lanes publish s0..s4 past the refused event; the engine retries it
      const stuck = await checkpointRow(client, 'nats-relay');
      expect(stuck?.attempts).toBeGreaterThan(0); // the refusal holds the checkpoint

      // The operator's fix: raise the limit, restart the service (graceful).
      await app.stop();
      await manager.streams.update('LEDGER', { ...info.config, max_msg_size: -1, duplicate_window: 1_000_000_000 });
    } finally {
      await connection.close(); // even when the test fails: an open client would go on reconnecting after this file
    }
    await sleep(1_500); // past the (shortened) duplicate window, as a restart is past 2 minutes
    app = await startAppProcess(database.url, { ...env, PROJECTION_SEGMENTS: '2' });
    await waitUntilCaughtUp(client, ['nats-relay'], 30_000);
    const [{ segments }] = await client
      .query<{ segments: number }>(`SELECT max(segments) AS segments FROM projection_checkpoints WHERE projection = 'nats-relay'`)
      .then((result) => result.rows);
    expect(segments).toBe(2); // re-split

    const after = await readJetStream(broker.url, 'LEDGER');
    const counts = new Map<string, number>();
    for (const message of after) counts.set(message.msgId, (counts.get(message.msgId) ?? 0) + 1);
    const repeated = [...counts].filter(([, count]) => count > 1);
    console.log(`${after.length} messages, repeated: ${JSON.stringify(repeated)}`);
    expect(repeated).toEqual([]);
  }, 90_000);
});
