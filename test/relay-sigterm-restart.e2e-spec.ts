import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { RetentionPolicy, StorageType, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { type AppProcess, startAppProcess } from './support/app-process.js';
import { type NatsServer, startNatsServer } from './support/nats-server.js';
import { eventually, waitUntilCaughtUp } from './support/projection-fixtures.js';
import { jetStreamCount, mixedLoad, openAccounts, readJetStream } from './support/relay-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

/**
 * Review of issue 17 (found as a reproduction at 40f221e: 69 message ids stored twice with 32 lanes,
 * 1 with one lane): a graceful stop (SIGTERM) while the relay drains a backlog in lanes, and a start
 * later than the duplicate window (a maintenance stop of a few minutes; the window is 10 s here). Two
 * flaws: the checkpoint took only the acknowledged prefix of the batch while lanes had published past
 * it, and that memory died with the process; and RelayClosing gave up publishes already sent whose
 * acknowledgement was on its way, although the broker stored them. Fixed by the engine writing the
 * events completed past the checkpoint with it (completed_ahead, migration 019) and by the relay
 * giving publishes in flight a grace period for their acknowledgement at shutdown (event-relay.ts).
 */
describe('relay: SIGTERM mid-backlog, start later than the duplicate window', () => {
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

  it('publishes no event twice', async () => {
    // The relay's stream as it would create it, with a 10 s duplicate window (longer than one
    // publish's timeout and backoff, so an in-place retry of the first process is still dropped) (it keeps an existing stream).
    const connection = await connect({ servers: broker.url });
    const manager = await jetstreamManager(connection);
    await manager.streams.add({
      name: 'LEDGER',
      subjects: ['ledger.events.>'],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      duplicate_window: 10_000_000_000,
    });
    await connection.close();

    const env = {
      NATS_URL: broker.url,
      PROJECTION_SEGMENTS: '1',
      SHUTDOWN_DELAY_MS: '0',
      NATS_PUBLISH_CONCURRENCY: '32',
    };
    app = await startAppProcess(database.url, env);
    // A backlog over many streams while the broker is down.
    await broker.stop();
    const accounts = await openAccounts(app.url, 60);
    await mixedLoad(app.url, accounts, { workers: 6, commands: 1500, seed: 43 });
    const { rows } = await client.query<{ count: string }>('SELECT count(*) FROM events');
    const total = Number(rows[0].count);
    await broker.start();
    await eventually(
      'the relay part-way through the backlog',
      async () => ((await jetStreamCount(broker.url, 'LEDGER').catch(() => 0)) > 50 ? true : undefined),
      60_000,
      5,
    );
    await app.stop();
    const storedAtStop = await jetStreamCount(broker.url, 'LEDGER');
    await sleep(11_000); // later than the duplicate window, as a stop of some minutes is in production
    app = await startAppProcess(database.url, env);
    await waitUntilCaughtUp(client, ['nats-relay'], 60_000);

    const after = await readJetStream(broker.url, 'LEDGER');
    const counts = new Map<string, number>();
    for (const message of after) counts.set(message.msgId, (counts.get(message.msgId) ?? 0) + 1);
    const repeated = [...counts].filter(([, count]) => count > 1);
    // Each repeated message id: the stream sequences of its copies (before / after the stop).
    const copies = repeated.slice(0, 10).map(([id]) => `${id} @ ${after.filter((m) => m.msgId === id).map((m) => m.seq)}`);
    console.log(
      `${total} events, ${storedAtStop} stored at the stop, ${after.length} messages, ${repeated.length} repeated: ${copies.join('; ')}`,
    );
    expect(storedAtStop).toBeLessThan(total); // the stop was mid-backlog
    expect(repeated).toEqual([]);
  }, 180_000);
});
