import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { segmentOfKey } from '../src/event-sourcing/index.js';
import { type AppProcess, call, startAppProcess } from './support/app-process.js';
import { type NatsServer, startNatsServer } from './support/nats-server.js';
import { eventually, headOfLog, waitUntilCaughtUp } from './support/projection-fixtures.js';
import { expectRelayedExactlyOnce, jetStreamCount, mixedLoad, openAccounts, readJetStream } from './support/relay-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const SEGMENTS = 4;
const LEASE_TTL_MS = 2000;
const SETTLED = ['transfer-process', 'nats-relay'];
/** The process id inside an engine's owner id (`host:pid:random`). */
const pidOf = (owner: string | null | undefined) => (owner ? Number(owner.split(':').at(-2)) : undefined);

/** Which process holds each segment of the relay, as GET /admin/projections/nats-relay shows it. */
async function segmentOwners(app: AppProcess): Promise<Array<number | undefined>> {
  const response = await call(app.url, 'GET', '/admin/projections/nats-relay');
  expect(response.status).toBe(200);
  // `runner`: the owner of the segment's live lease (null once it expired).
  const segments = response.body.segments as Array<{ segment: number; runner: string | null }>;
  expect(segments).toHaveLength(SEGMENTS);
  return segments.map((segment) => pidOf(segment.runner));
}

/**
 * Issue 17: "events of a segment-owning instance that dies are published by the one that takes
 * over". The relay split in 4 segments over two service processes, 2 each (fair share); one of them
 * is killed with SIGKILL while both write and publish; the survivor takes its segments over once
 * their leases expire and publishes their events: every event in the stream exactly once, each
 * stream's versions in order on its subject, none missing.
 */
describe('relay segments over two instances, one killed (a real nats-server)', () => {
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

  it('kill -9 of an instance owning relay segments: the survivor takes them over and publishes their events exactly once, in order', async () => {
    const env = {
      NATS_URL: broker.url,
      PROJECTION_SEGMENTS_NATS_RELAY: String(SEGMENTS),
      PROJECTION_LEASE_TTL_MS: String(LEASE_TTL_MS),
    };
    const instances = [await startAppProcess(database.url, env), await startAppProcess(database.url, env)];
    apps.push(...instances);
    const [victim, survivor] = instances;
    // Fair share: ceil(4 / 2) = 2 segments each, every segment held.
    const shared = await eventually(
      'two relay segments per instance',
      async () => {
        const owners = await segmentOwners(survivor);
        const count = (pid: number) => owners.filter((owner) => owner === pid).length;
        return count(victim.pid) === 2 && count(survivor.pid) === 2 ? owners : undefined;
      },
      30_000,
      50,
      async () =>
        `pids ${victim.pid}, ${survivor.pid}: ${JSON.stringify((await call(survivor.url, 'GET', '/admin/projections/nats-relay')).body.segments)}`,
    );
    const victimSegments = shared.flatMap((owner, segment) => (owner === victim.pid ? [segment] : []));

    // A backlog while the broker is down, so that the victim dies with events of its segments
    // unpublished; then load on both instances that goes on past the kill (new events in every
    // segment, the victim's included, which only the survivor can publish).
    const accounts = await openAccounts(survivor.url, 12);
    await broker.stop();
    await mixedLoad(survivor.url, accounts, { workers: 6, commands: 300, seed: 29 });
    await broker.start();
    let loading = true;
    const load = Promise.all([
      mixedLoad(survivor.url, accounts, { workers: 3, until: () => !loading, seed: 31 }),
      mixedLoad(victim.url, accounts, { workers: 3, until: () => !loading, seed: 37 }).catch(() => 0), // it dies mid-request
    ]);
    await eventually(
      'the relay to be part-way through the backlog',
      async () => ((await jetStreamCount(broker.url, 'LEDGER')) > 20 ? true : undefined),
      60_000,
      5,
    );
    await victim.kill();
    const storedAtKill = await jetStreamCount(broker.url, 'LEDGER');
    const victimBehind = await client.query<{ name: string; behind: boolean }>(
      `SELECT c.name, EXISTS (SELECT 1 FROM events e WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)) AS behind
       FROM projection_checkpoints c WHERE c.projection = 'nats-relay' AND c.lease_owner LIKE $1`,
      [`%:${victim.pid}:%`],
    );
    // It died owning its two segments, with events past their checkpoints.
    expect(victimBehind.rows).toHaveLength(2);
    expect(victimBehind.rows.every((row) => row.behind)).toBe(true);

    // The survivor takes the dead instance's segments over once their leases expire.
    await eventually(
      'the survivor to hold every relay segment',
      async () => ((await segmentOwners(survivor)).every((owner) => owner === survivor.pid) ? true : undefined),
      30_000,
      50,
    );
    loading = false;
    await load;
    const accepted = await mixedLoad(survivor.url, accounts, { workers: 2, commands: 40, seed: 41 });
    expect(accepted).toBeGreaterThan(0);

    await waitUntilCaughtUp(client, SETTLED, 120_000);
    // Every segment, the victim's included, is caught up under the survivor.
    const head = await headOfLog(client);
    const segments = (await call(survivor.url, 'GET', '/admin/projections/nats-relay')).body.segments as Array<{
      segment: number;
      checkpoint: { position: number };
      runner: string | null;
    }>;
    for (const segment of victimSegments) {
      expect({ segment, owner: pidOf(segments[segment].runner), position: segments[segment].checkpoint.position }).toEqual({
        segment,
        owner: survivor.pid,
        position: head.position,
      });
    }
    const messages = await readJetStream(broker.url, 'LEDGER');
    await expectRelayedExactlyOnce(client, messages, survivor.url);
    // Events of the dead instance's segments (the relay's key is the stream id) stored after it died:
    // published by the survivor.
    const ofVictimSegmentsAfterKill = messages.filter(
      (message) => message.seq > storedAtKill && victimSegments.includes(segmentOfKey(message.body.streamId, SEGMENTS)),
    );
    expect(ofVictimSegmentsAfterKill.length).toBeGreaterThan(0);
  }, 240_000);
});
