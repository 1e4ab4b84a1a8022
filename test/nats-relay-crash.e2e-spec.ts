import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { type AppProcess, startAppProcess } from './support/app-process.js';
import { type NatsServer, startNatsServer } from './support/nats-server.js';
import { checkpointRow, eventually, headOfLog, waitUntilCaughtUp } from './support/projection-fixtures.js';
import { expectRelayedExactlyOnce, jetStreamCount, mixedLoad, openAccounts, readJetStream } from './support/relay-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const SETTLED = ['transfer-process', 'nats-relay'];
/** The process id inside an engine's owner id (`host:pid:random`). */
const pidOf = (owner: string | null | undefined) => (owner ? Number(owner.split(':').at(-2)) : undefined);

describe('relay crashes (a real nats-server)', () => {
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

  it('kill -9 of the service in the middle of publishing a backlog, restart: every event still exactly once', async () => {
    // A backlog first (broker down), so the kill lands while the relay is busy publishing.
    await broker.stop();
    const first = await startAppProcess(database.url, { NATS_URL: broker.url });
    apps.push(first);
    const accounts = await openAccounts(first.url, 10);
    await mixedLoad(first.url, accounts, { workers: 8, commands: 500 });
    await broker.start();
    const total = (await headOfLog(client)).position;
    await eventually(
      'the relay to be part-way through the backlog',
      async () => {
        const count = await jetStreamCount(broker.url, 'LEDGER');
        return count > 20 ? count : undefined;
      },
      60_000,
      5,
    );
    await first.kill();
    const atKill = await checkpointRow(client, 'nats-relay');
    expect(atKill!.checkpoint.position).toBeLessThan(total); // it died mid-publish

    const second = await startAppProcess(database.url, { NATS_URL: broker.url });
    apps.push(second);
    await mixedLoad(second.url, accounts, { workers: 4, commands: 100, seed: 5 });
    await waitUntilCaughtUp(client, SETTLED, 120_000);
    const messages = await readJetStream(broker.url, 'LEDGER');
    await expectRelayedExactlyOnce(client, messages, second.url);
  }, 240_000);

  it('two instances: the lease holder killed mid-publish, the other one takes over and publishes the rest exactly once', async () => {
    for (const app of apps) await app.kill(); // the previous test's service holds the lease until it expires
    const env = { NATS_URL: broker.url, PROJECTION_LEASE_TTL_MS: '2000' };
    const instances = [await startAppProcess(database.url, env), await startAppProcess(database.url, env)];
    apps.push(...instances);
    const holder = await eventually(
      'a live holder of the relay lease',
      async () => {
        const owner = pidOf((await checkpointRow(client, 'nats-relay'))?.leaseOwner);
        return instances.find((instance) => instance.pid === owner);
      },
      30_000,
      50,
    );
    const survivor = instances.find((instance) => instance !== holder)!;
    // A backlog while the broker is down, then the holder dies while it publishes it.
    const before = await jetStreamCount(broker.url, 'LEDGER');
    await broker.stop();
    const accounts = await openAccounts(survivor.url, 8);
    await mixedLoad(survivor.url, accounts, { workers: 6, commands: 300, seed: 23 });
    await broker.start();
    await eventually(
      'the holder to be part-way through the backlog',
      async () => {
        const count = await jetStreamCount(broker.url, 'LEDGER');
        return count > before + 10 ? count : undefined;
      },
      60_000,
      5,
    );
    await holder.kill();
    expect((await checkpointRow(client, 'nats-relay'))!.checkpoint.position).toBeLessThan((await headOfLog(client)).position);

    await waitUntilCaughtUp(client, SETTLED, 120_000);
    expect(pidOf((await checkpointRow(client, 'nats-relay'))!.leaseOwner)).toBe(survivor.pid);
    await expectRelayedExactlyOnce(client, await readJetStream(broker.url, 'LEDGER'), survivor.url);
  }, 240_000);

  it('SIGTERM while the broker is down with events unpublished: the next instance publishes the rest exactly once', async () => {
    for (const app of apps) await app.kill();
    const first = await startAppProcess(database.url, { NATS_URL: broker.url, PROJECTION_LEASE_TTL_MS: '2000' });
    apps.push(first);
    await broker.stop();
    const accounts = await openAccounts(first.url, 3);
    await mixedLoad(first.url, accounts, { workers: 2, commands: 30, seed: 41 });
    await eventually('the relay to wait for the broker', async () =>
      (await checkpointRow(client, 'nats-relay'))!.checkpoint.position < (await headOfLog(client)).position ? true : undefined,
    );
    // Stopped mid-outage with events not yet published: the relay gives up waiting for the broker, the
    // shutdown completes (exit 0, not the SHUTDOWN_TIMEOUT_MS exit 1 of a relay that kept waiting),
    // and nothing is lost for the next instance.
    await first.stop();
    expect(first.output()).toContain('SIGTERM received');
    expect({ code: first.child.exitCode, output: first.output().includes('SHUTDOWN_TIMEOUT_MS') }).toEqual({ code: 0, output: false });

    await broker.start();
    const second = await startAppProcess(database.url, { NATS_URL: broker.url, PROJECTION_LEASE_TTL_MS: '2000' });
    apps.push(second);
    await waitUntilCaughtUp(client, SETTLED, 120_000);
    await expectRelayedExactlyOnce(client, await readJetStream(broker.url, 'LEDGER'), second.url);
  }, 240_000);
});
