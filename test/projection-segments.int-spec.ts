// Segmented projections (issue 15): ownership spread over instances, takeover after a SIGKILL,
// per-key order under concurrent writers (property test), and a change of the segment count.
import { type ChildProcess, fork } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import fc from 'fast-check';
import type { EntityManager } from 'typeorm';
import {
  ANY,
  NO_STREAM,
  type Projection,
  ProjectionHandlers,
  ProjectionLayoutError,
  type RecordedEvent,
  segmentOfKey,
} from '../src/event-sourcing/index.js';
import { distPath } from './support/app-process.js';
import {
  type EngineModule,
  Ticked,
  countingState,
  createCountingTables,
  defineCountingProjection,
  eventually,
  countingTables,
  rows,
  startEngineModule,
  withClient,
} from './support/projection-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

interface Child {
  readonly process: ChildProcess;
  readonly owner: string;
  readonly output: () => string;
  kill(): Promise<void>;
}

async function forkEngine(options: { url: string; name: string; leaseTtlMs: number; segments: number }): Promise<Child> {
  const child = fork(
    distPath('test', 'support', 'projection-engine.child.js'),
    [JSON.stringify({ ...options, batchSize: 20, sleepMs: 0, pauseAtCall: -1 })],
    { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] },
  );
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const orphanGuard = () => child.kill('SIGKILL');
  process.once('exit', orphanGuard);
  void exited.then(() => process.off('exit', orphanGuard));
  const owner = await new Promise<string>((resolve, reject) => {
    child.on('message', (message: { ready?: string }) => message.ready && resolve(message.ready));
    child.once('exit', (code) => reject(new Error(`engine child exited with ${code}:\n${output}`)));
  });
  return {
    process: child,
    owner,
    output: () => output,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Live lease owners of each segment row of a projection. */
async function owners(url: string, projection: string): Promise<Array<{ segment: number; owner: string | null }>> {
  return withClient(url, (client) =>
    rows<{ segment: number; owner: string | null }>(
      client,
      `SELECT segment, CASE WHEN lease_expires_at > clock_timestamp() THEN lease_owner END AS owner
         FROM projection_checkpoints WHERE projection = $1 ORDER BY segment`,
      [projection],
    ),
  );
}

/** Waits until `probe` is true (eventually takes any defined value, false included, as done). */
function until(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<true> {
  return eventually(what, async () => ((await probe()) ? true : undefined), timeoutMs, 50);
}

function countBy(values: ReadonlyArray<string | null>): Map<string | null, number> {
  const counts = new Map<string | null, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts;
}

async function appendTicks(seeder: EngineModule, streams: number, perStream: number, tag: string): Promise<number> {
  for (let stream = 0; stream < streams; stream++) {
    await seeder.store.append(
      `ticks-${tag}-${stream}`,
      Array.from({ length: perStream }, (_, n) => new Ticked({ n })),
      { expectedVersion: NO_STREAM },
    );
  }
  return streams * perStream;
}

describe('segments spread over three engine processes', () => {
  const NAME = 'segmented-counting';
  const Counting = defineCountingProjection(NAME, 'async', [Ticked]);
  const SEGMENTS = 6;
  const LEASE_TTL_MS = 1000;
  let database: TestDatabase;
  let seeder: EngineModule;
  const children: Child[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    await createCountingTables(database.url, Counting.prefix);
    // Migrations and the segment rows, with no runner in this process.
    seeder = await startEngineModule({
      url: database.url,
      events: [Ticked],
      projections: [Counting],
      engine: { enabled: false, segments: { default: SEGMENTS, byName: {} } },
    });
  });
  afterAll(async () => {
    for (const child of children) await child.kill();
    await seeder?.close();
    await database?.drop();
  });

  it('each takes a fair share; kill -9 one: its segments move within the lease; every event applied exactly once', async () => {
    let total = await appendTicks(seeder, 30, 5, 'a');
    for (let i = 0; i < 3; i++) {
      children.push(await forkEngine({ url: database.url, name: NAME, leaseTtlMs: LEASE_TTL_MS, segments: SEGMENTS }));
    }
    const alive = () => children.filter((child) => child.process.exitCode === null && child.process.signalCode === null);
    // Fair share: ceil(6 / 3) = 2 each, every segment held.
    await until('two segments per instance', 30_000, async () => {
      const counts = countBy((await owners(database.url, NAME)).map((row) => row.owner));
      return counts.get(null) === undefined && alive().every((child) => counts.get(child.owner) === 2);
    });
    total += await appendTicks(seeder, 30, 5, 'b');

    const [victim, ...survivors] = children;
    await victim.kill();
    const killedAt = Date.now();
    total += await appendTicks(seeder, 30, 5, 'c');
    // Its two segments are taken over once its lease and heartbeat expire: 3 each.
    await until('the survivors hold every segment, three each', 30_000, async () => {
      const counts = countBy((await owners(database.url, NAME)).map((row) => row.owner));
      return survivors.every((child) => counts.get(child.owner) === 3);
    });
    // Generous bound (loaded machine): the lease TTL, a heartbeat period, and the takeover's poll.
    expect(Date.now() - killedAt).toBeLessThan(LEASE_TTL_MS * 10);

    await until('every event applied', 60_000, async () => (await countingState(seeder.dataSource, Counting.prefix)).n >= total);
    await sleep(300); // anything applied twice would show up now
    const state = await countingState(seeder.dataSource, Counting.prefix);
    expect(state.duplicates).toEqual([]);
    expect(state.n).toBe(total);
    expect(state.positions).toHaveLength(total);
    const [{ events }] = await rows<{ events: string }>(seeder.dataSource, `SELECT count(*) AS events FROM events`);
    expect(Number(events)).toBe(total);
  });
});

/** Records every application with its order, stream and version (deliberately not idempotent). */
@Injectable()
class OrderRecording implements Projection {
  readonly name = 'order-recording';
  readonly mode = 'async';
  readonly tables = ['order_log'];
  readonly handlers = new ProjectionHandlers().on(Ticked, (event: RecordedEvent<Ticked>, manager: EntityManager) =>
    manager.query(`INSERT INTO order_log (stream_id, version, position) VALUES ($1, $2, $3)`, [
      event.streamId,
      event.version,
      event.position,
    ]),
  );
}

describe('per-key order under concurrent writers, across segments and two instances (property)', () => {
  let database: TestDatabase;
  let first: EngineModule;
  let second: EngineModule;

  beforeAll(async () => {
    database = await createTestDatabase();
    await withClient(database.url, (client) =>
      client.query(
        `CREATE TABLE order_log (id bigserial PRIMARY KEY, stream_id text NOT NULL, version bigint NOT NULL, position bigint NOT NULL)`,
      ),
    );
    const engine = { segments: { default: 4, byName: {} }, leaseTtlMs: 2000, pollIntervalMs: 50, batchSize: 7 };
    first = await startEngineModule({ url: database.url, events: [Ticked], projections: [OrderRecording], engine });
    second = await startEngineModule({ url: database.url, events: [Ticked], projections: [OrderRecording], engine });
  });
  afterAll(async () => {
    await second?.close();
    await first?.close();
    await database?.drop();
  });

  it('every key is applied in version order, exactly once', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        // Writers, each a list of appends: (key, events in that append).
        fc.array(fc.array(fc.record({ key: fc.integer({ min: 0, max: 11 }), events: fc.integer({ min: 1, max: 3 }) }), { maxLength: 12 }), {
          minLength: 2,
          maxLength: 5,
        }),
        async (writers) => {
          const tag = `r${run++}`;
          await Promise.all(
            writers.map(async (appends, writer) => {
              for (const { key, events } of appends) {
                // Both engines' stores write, so appends commit out of position order too.
                const store = writer % 2 ? second.store : first.store;
                await store.append(
                  `${tag}-k${key}`,
                  Array.from({ length: events }, (_, n) => new Ticked({ n })),
                  { expectedVersion: ANY },
                );
              }
            }),
          );
          const expected = writers.flat().reduce((sum, append) => sum + append.events, 0);
          const query = `SELECT stream_id, version::int AS version FROM order_log WHERE stream_id LIKE $1 ORDER BY id`;
          await until(`run ${tag} applied`, 30_000, async () => (await rows(first.dataSource, query, [`${tag}-%`])).length >= expected);
          await sleep(100);
          const applied = await rows<{ stream_id: string; version: number }>(first.dataSource, query, [`${tag}-%`]);
          expect(applied).toHaveLength(expected);
          const versions = new Map<string, number[]>();
          for (const row of applied) versions.set(row.stream_id, [...(versions.get(row.stream_id) ?? []), row.version]);
          for (const [, list] of versions) expect(list).toEqual(list.map((_, index) => index + 1));
        },
      ),
      { numRuns: 8 },
    );
    // Both instances ran segments (a fair share each: 2 of 4).
    expect(first.engine.heldSegments('order-recording').length).toBeGreaterThan(0);
    expect(second.engine.heldSegments('order-recording').length).toBeGreaterThan(0);
  });
});

describe('a change of the segment count', () => {
  const NAME = 'resplit-counting';
  const Counting = defineCountingProjection(NAME, 'async', [Ticked]);
  let database: TestDatabase;
  let engine: EngineModule | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
    await createCountingTables(database.url, Counting.prefix);
  });
  afterAll(async () => {
    await engine?.close();
    await database?.drop();
  });

  const start = (segments: number, enabled = true) =>
    startEngineModule({
      url: database.url,
      events: [Ticked],
      projections: [Counting],
      engine: { enabled, segments: { default: segments, byName: {} }, pollIntervalMs: 50, leaseTtlMs: 2000 },
    });

  it('re-splits at start at one checkpoint (old segments brought level first): nothing skipped or applied twice', async () => {
    engine = await start(2);
    let total = await appendTicks(engine, 20, 3, 'a');
    await until('applied with 2 segments', 30_000, async () => (await countingState(engine!.dataSource, Counting.prefix)).n >= total);
    await engine.close();
    // Old segments at different checkpoints: segment 0 applies the 'b' events of its keys (done here
    // by hand, as its runner would), segment 1 stays behind; the re-split must apply segment 1's
    // share of them, once, before the new segments start at segment 0's checkpoint.
    const seeder = await start(2, false);
    total += await appendTicks(seeder, 10, 3, 'b');
    const tables = countingTables(Counting.prefix);
    const bEvents = await rows<{ position: string; stream_id: string; transaction_id: string }>(
      seeder.dataSource,
      `SELECT position, stream_id, transaction_id::text FROM events WHERE stream_id LIKE 'ticks-b-%' ORDER BY transaction_id, position`,
    );
    const ofSegment0 = bEvents.filter((event) => segmentOfKey(event.stream_id, 2) === 0);
    expect(ofSegment0.length).toBeGreaterThan(0);
    expect(ofSegment0.length).toBeLessThan(bEvents.length);
    for (const event of ofSegment0) {
      await seeder.dataSource.query(`INSERT INTO ${tables.log} (position, stream_id) VALUES ($1, $2)`, [event.position, event.stream_id]);
      await seeder.dataSource.query(`UPDATE ${tables.count} SET n = n + 1 WHERE id = 1`);
    }
    const last = bEvents[bEvents.length - 1];
    await seeder.dataSource.query(`UPDATE projection_checkpoints SET transaction_id = $2::xid8, position = $3 WHERE name = $1`, [
      `${NAME}#0/2`,
      last.transaction_id,
      last.position,
    ]);
    await seeder.close();
    engine = await start(3);
    const layout = await rows<{ name: string; segments: number }>(
      engine.dataSource,
      `SELECT name, segments FROM projection_checkpoints WHERE projection = $1 ORDER BY segment`,
      [NAME],
    );
    expect(layout.map((row) => row.name)).toEqual([`${NAME}#0/3`, `${NAME}#1/3`, `${NAME}#2/3`]);
    total += await appendTicks(engine, 10, 3, 'c');
    await until('applied with 3 segments', 30_000, async () => (await countingState(engine!.dataSource, Counting.prefix)).n >= total);
    await sleep(300);
    const state = await countingState(engine.dataSource, Counting.prefix);
    expect(state.duplicates).toEqual([]);
    expect(state.n).toBe(total);
  });

  it('is refused, with the reason, while another instance holds a live lease on the old layout', async () => {
    // `engine` (3 segments) runs; an instance configured with 5 must not re-split under it.
    await expect(start(5)).rejects.toThrow(ProjectionLayoutError);
    await expect(start(5)).rejects.toThrow(/stored with 3 segment\(s\) and configured with 5.*live lease/);
    const [{ segments }] = await rows<{ segments: number }>(
      engine!.dataSource,
      `SELECT DISTINCT segments FROM projection_checkpoints WHERE projection = $1`,
      [NAME],
    );
    expect(segments).toBe(3);
  });
});
