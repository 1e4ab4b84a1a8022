import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { type AppProcess, call, startAppProcess } from './support/app-process.js';
import { type NatsServer, startNatsServer } from './support/nats-server.js';
import { eventually, rows, waitUntilCaughtUp } from './support/projection-fixtures.js';
import { expectRelayedExactlyOnce, jetStreamCount, mixedLoad, openAccounts, readJetStream } from './support/relay-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

/** The relay and the process manager that writes transfers' later events, both at the head of the log. */
const SETTLED = ['transfer-process', 'nats-relay'];

describe('relay to NATS JetStream (a real nats-server)', () => {
  let database: TestDatabase;
  let client: pg.Pool;
  let broker: NatsServer;
  let app: AppProcess;

  beforeAll(async () => {
    database = await createTestDatabase();
    client = new pg.Pool({ connectionString: database.url, max: 2 });
    broker = await startNatsServer();
    app = await startAppProcess(database.url, { NATS_URL: broker.url });
  }, 60_000);

  afterAll(async () => {
    await app?.kill();
    await client?.end();
    await broker?.dispose();
    await database?.drop();
  });

  it('publishes every event of a mixed load exactly once, in version order per subject, as GET /events shows it', async () => {
    const accounts = await openAccounts(app.url, 12);
    expect(await mixedLoad(app.url, accounts, { workers: 8, commands: 400 })).toBeGreaterThan(300);
    await waitUntilCaughtUp(client, SETTLED, 90_000);
    const messages = await readJetStream(broker.url, 'LEDGER');
    expect(messages.some((message) => message.subject.startsWith('ledger.events.transfer.'))).toBe(true);
    await expectRelayedExactlyOnce(client, messages, app.url);
    // The relay is a projection like the others: status and lag in /admin/projections.
    expect((await call(app.url, 'GET', '/admin/projections/nats-relay')).body).toMatchObject({ status: 'running', lagEvents: 0 });
  }, 180_000);

  it('loses nothing while the broker is down for 10 s under load, shows the lag, and catches up', async () => {
    const accounts = await openAccounts(app.url, 6);
    await waitUntilCaughtUp(client, SETTLED, 60_000);
    let stop = false;
    const load = mixedLoad(app.url, accounts, { workers: 4, until: () => stop, seed: 99 });
    try {
      await sleep(1000);
      await broker.stop();
      const downAt = Date.now();
      // While it is down the relay's checkpoint stays put and its lag shows.
      const lagging = await eventually(
        'the relay to show lag while the broker is down',
        async () => {
          const relay = (await call(app.url, 'GET', '/admin/projections/nats-relay')).body;
          return relay.lagEvents > 0 ? relay : undefined;
        },
        10_000,
        100,
      );
      expect(lagging.status).toBe('running');
      await sleep(Math.max(0, 10_000 - (Date.now() - downAt)));
      // Ten seconds of outage (two publish timeouts and more) counted no failed attempt: an outage of
      // any length must not stop the relay in `failed` after PROJECTION_MAX_ATTEMPTS.
      expect((await call(app.url, 'GET', '/admin/projections/nats-relay')).body).toMatchObject({ status: 'running', attempts: 0 });
      await broker.start();
      await sleep(1000);
    } finally {
      stop = true;
      await load;
    }
    await waitUntilCaughtUp(client, SETTLED, 120_000);
    const messages = await readJetStream(broker.url, 'LEDGER');
    await expectRelayedExactlyOnce(client, messages);
    const [{ count }] = await rows<{ count: string }>(client, 'SELECT count(*)::text AS count FROM events');
    expect(await jetStreamCount(broker.url, 'LEDGER')).toBe(Number(count));
    expect((await call(app.url, 'GET', '/admin/projections/nats-relay')).body).toMatchObject({ status: 'running', lagEvents: 0 });
  }, 240_000);
});
