// The projection runner's lean hot loop (issue 7): one statement reads a batch and tells whether later
// commits are held back; a batch a projection has nothing to do with moves its checkpoint in one fenced
// statement, with no transaction and no handler call; operators' changes reach a running runner.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import pg from 'pg';
import {
  EventType,
  NO_STREAM,
  type Projection,
  ProjectionAdmin,
  ProjectionCheckpoints,
  ProjectionEngine,
  type RecordedEvent,
  START_OF_LOG,
  compareCheckpoints,
} from '../src/event-sourcing/index.js';
import { type EventStoreModule, startEventStoreModule } from './support/event-store-module.js';
import {
  Ticked,
  checkpointRow,
  countingState,
  createCountingTables,
  defineCountingProjection,
  eventually,
  headOfLog,
  untilNothingHeldBack,
  waitUntilApplied,
} from './support/projection-fixtures.js';

@EventType('engine-test.Tocked')
class Tocked {
  readonly n!: number;
  constructor(data: Tocked) {
    Object.assign(this, data);
  }
}

const TicksOnly = defineCountingProjection('ticks-only', 'async', [Ticked]);
const Fragile = defineCountingProjection('fragile', 'async', [Ticked]);

/** A set-based projection that reads only Ticked: records the event types of every batch it is given. */
@Injectable()
class TickBatches implements Projection {
  static readonly batches: string[][] = [];
  readonly name = 'tick-batches';
  readonly mode = 'async';
  readonly tables = ['tick_batches'];
  readonly handles = [Ticked];
  async applyBatch(events: readonly RecordedEvent[]): Promise<void> {
    TickBatches.batches.push(events.map((event) => event.type));
  }
}

/** How long a 20 ms timer takes to fire: the event loop's responsiveness. */
async function timerDelay(): Promise<number> {
  const start = performance.now();
  await sleep(20);
  return performance.now() - start;
}

describe('the projection runner hot loop', () => {
  let t: EventStoreModule;
  let checkpoints: ProjectionCheckpoints;
  let engine: ProjectionEngine;

  beforeAll(async () => {
    t = await startEventStoreModule({
      events: [Ticked, Tocked],
      projections: [TicksOnly, Fragile, TickBatches],
      // A quiet runner looks at the log on its own only every 20 s (a third of the lease): whatever
      // this suite waits for much less than that came from a notification.
      engine: { pollIntervalMs: 60_000, batchSize: 100, leaseTtlMs: 60_000, retryBaseMs: 5, maxAttempts: 3 },
    });
    await createCountingTables(t.database.url, TicksOnly.prefix);
    await createCountingTables(t.database.url, Fragile.prefix);
    await t.dataSource.query('CREATE TABLE tick_batches (id integer)');
    checkpoints = t.moduleRef.get(ProjectionCheckpoints);
    engine = t.moduleRef.get(ProjectionEngine);
  });
  afterAll(() => t?.close());

  const append = (events: object[]) => t.store.append(`stream-${randomUUID()}`, events, { expectedVersion: NO_STREAM });
  /**
   * Well below the 20 s a runner waits without a notification; timed from when commit-safe readers can
   * see the event (a transaction of another test file may hold the server-wide horizon back longer;
   * meanwhile the runner looks again every few milliseconds, it does not wait for its poll).
   */
  const applied = async (name: string, position: number) => {
    await untilNothingHeldBack(t.dataSource);
    await waitUntilApplied(t.dataSource, name, position, 5_000);
  };

  it('readBatch returns what readAll returns, and says when a later commit is held back by an older transaction', async () => {
    const start = await headOfLog(t.dataSource);
    const first = await append([new Tocked({ n: 1 }), new Tocked({ n: 2 })]);
    await eventually('the two events to be readable', async () => {
      const batch = await t.log.readBatch(start, 100);
      return batch.events.length === 2 ? batch : undefined;
    });
    const limited = await t.log.readBatch(start, 1);
    expect(limited.events.map((event) => event.position)).toEqual([first.events[0].position]);
    const all = await t.log.readAll(start, 100);
    expect((await t.log.readBatch(start, 100)).events.map((event) => event.position)).toEqual(all.events.map((event) => event.position));

    // An older transaction in flight that appends nothing (as a projection's batch or a lease renewal).
    const holder = new pg.Client({ connectionString: t.database.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_current_xact_id()');
      const later = await append([new Tocked({ n: 3 })]);
      const held = await t.log.readBatch(all.checkpoint, 100);
      expect(held.events).toEqual([]);
      expect(held.heldBack).toBe(true);
      await holder.query('COMMIT');
      // Other suites' transactions on the same server can hold the horizon back for a moment too.
      const released = await eventually('the later event to be released', async () => {
        const batch = await t.log.readBatch(all.checkpoint, 100);
        return batch.events.length > 0 && !batch.heldBack ? batch : undefined;
      });
      expect(released.events.map((event) => event.position)).toEqual([later.position]);
      expect(released.events[0].data).toBeInstanceOf(Tocked);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    }
  });

  // With a 20 s poll and 5 s waits, these tests also show that the runner never misses a notification.
  it('a batch with no event the projection handles moves its checkpoint without applying anything; a later handled event is applied once', async () => {
    const before = await countingState(t.dataSource, TicksOnly.prefix);
    TickBatches.batches.length = 0;
    const ignored = await append([new Tocked({ n: 10 }), new Tocked({ n: 11 }), new Tocked({ n: 12 })]);
    await applied(TicksOnly.projectionName, ignored.position);
    await applied('tick-batches', ignored.position);
    for (const event of ignored.events) expect(TicksOnly.behaviour.calls.get(event.position)).toBeUndefined();
    expect(await countingState(t.dataSource, TicksOnly.prefix)).toEqual(before);
    expect(TickBatches.batches).toEqual([]); // applyBatch never saw a batch of Tocked alone

    const ticked = await append([new Tocked({ n: 13 }), new Ticked({ n: 14 })]);
    await applied(TicksOnly.projectionName, ticked.position);
    await applied('tick-batches', ticked.position);
    const after = await countingState(t.dataSource, TicksOnly.prefix);
    expect(after.n).toBe(before.n + 1);
    expect(after.positions.filter((position) => !before.positions.includes(position))).toEqual([ticked.events[1].position]);
    expect(after.duplicates).toEqual([]);
    expect(TickBatches.batches).toEqual([['engine-test.Tocked', 'engine-test.Ticked']]); // a batch with a Ticked: applied whole
  });

  it('advancePast is fenced: another owner, an older token or a checkpoint that moved on change nothing', async () => {
    const row = (await checkpointRow(t.dataSource, TicksOnly.projectionName))!;
    const [{ token }] = (await t.dataSource.query('SELECT lease_token::text AS token FROM projection_checkpoints WHERE name = $1', [
      TicksOnly.projectionName,
    ])) as Array<{ token: string }>;
    const head = await headOfLog(t.dataSource);
    const owner = row.leaseOwner!;
    expect(owner).toBe(engine.owner);
    const ttl = 5_000;
    expect(await checkpoints.advancePast(TicksOnly.projectionName, 'someone-else', token, row.checkpoint, head, ttl)).toBe(false);
    expect(await checkpoints.advancePast(TicksOnly.projectionName, owner, String(BigInt(token) - 1n), row.checkpoint, head, ttl)).toBe(
      false,
    );
    expect(await checkpoints.advancePast(TicksOnly.projectionName, owner, token, START_OF_LOG, head, ttl)).toBe(false);
    const unchanged = (await checkpointRow(t.dataSource, TicksOnly.projectionName))!;
    expect(compareCheckpoints(unchanged.checkpoint, row.checkpoint)).toBe(0);
  });

  it("an operator's rebuild request reaches the idle runner at once (it reloads its row), although it polls only every 20 s", async () => {
    const completedAt = async () =>
      (await t.dataSource.query('SELECT rebuild_completed_at FROM projection_checkpoints WHERE name = $1', [TicksOnly.projectionName]))[0]
        .rebuild_completed_at as Date | null;
    const ticked = await append([new Ticked({ n: 20 })]);
    await applied(TicksOnly.projectionName, ticked.position);
    const before = await completedAt();
    await t.moduleRef.get(ProjectionAdmin).rebuild(TicksOnly.projectionName);
    await eventually(
      'the rebuild to be swapped in',
      async () => {
        const after = await completedAt();
        return after && after.getTime() !== before?.getTime() ? after : undefined;
      },
      8_000,
    );
    const rebuilt = await countingState(t.dataSource, TicksOnly.prefix);
    expect(rebuilt.positions).toContain(ticked.events[0].position);
    expect(rebuilt.duplicates).toEqual([]);
    expect((await checkpointRow(t.dataSource, TicksOnly.projectionName))?.rebuildStatus).toBeNull();
  });

  it('a projection stopped in "failed" waits for an operator without starving the event loop, and resumes on retry', async () => {
    const refused = await append([new Ticked({ n: 30 })]);
    Fragile.behaviour.failures.set(refused.position, 'always');
    await eventually('fragile to stop in failed', async () =>
      (await checkpointRow(t.dataSource, Fragile.projectionName))?.status === 'failed' ? true : undefined,
    );
    // Appends wake every runner; the failed one must wait, not spin on a wake-up it already had.
    for (let n = 0; n < 5; n++) await append([new Tocked({ n: 31 + n })]);
    const delays = [];
    for (let n = 0; n < 5; n++) delays.push(await timerDelay());
    expect(Math.max(...delays)).toBeLessThan(1_000); // it spun for a third of the lease (20 s) before the fix

    Fragile.behaviour.failures.delete(refused.position);
    await t.moduleRef.get(ProjectionAdmin).retry(Fragile.projectionName);
    const later = await append([new Ticked({ n: 40 })]);
    await applied(Fragile.projectionName, later.position);
    const counted = await countingState(t.dataSource, Fragile.prefix);
    expect(counted.positions).toEqual(expect.arrayContaining([refused.position, later.position]));
    expect(counted.duplicates).toEqual([]);
  });
});

describe('the batch window (PROJECTION_BATCH_WINDOW_MS)', () => {
  const WINDOW_MS = 1_500;
  const Windowed = defineCountingProjection('windowed', 'async', [Ticked]);
  let t: EventStoreModule;

  beforeAll(async () => {
    t = await startEventStoreModule({
      events: [Ticked],
      projections: [Windowed],
      engine: { batchWindowMs: WINDOW_MS, pollIntervalMs: 60_000, leaseTtlMs: 60_000, batchSize: 100 },
    });
    await createCountingTables(t.database.url, Windowed.prefix);
  });
  afterAll(() => t?.close());

  const tick = (n: number) => t.store.append(`ticks-${randomUUID()}`, [new Ticked({ n })], { expectedVersion: NO_STREAM });

  it('applies the first event after a quiet spell at once, and a burst of separate appends in few batches, each event once', async () => {
    const advances: number[] = [];
    t.moduleRef.get(ProjectionEngine).progress.on('advanced', (name: string, checkpoint: { position: number }) => {
      if (name === Windowed.projectionName) advances.push(checkpoint.position);
    });
    await sleep(WINDOW_MS); // quiet for a whole window
    const first = await tick(0);
    await untilNothingHeldBack(t.dataSource); // timed from when commit-safe readers can see it (see `applied` above)
    const sentAt = Date.now();
    await waitUntilApplied(t.dataSource, Windowed.projectionName, first.position);
    expect(Date.now() - sentAt).toBeLessThan(WINDOW_MS); // not held for the window

    const burst = [];
    for (let n = 1; n <= 12; n++) {
      burst.push(await tick(n)); // one transaction each, a few milliseconds apart
      await sleep(10);
    }
    const last = burst
      .map((appended) => appended.position)
      .sort((a, b) => a - b)
      .at(-1)!;
    await waitUntilApplied(t.dataSource, Windowed.projectionName, last);
    // Twelve transactions committed one after the other (without the window, about one batch
    // each) go together after the window. A burst slowed past a window's end, or a commit held
    // back by an older transaction in flight, may cost a batch more.
    expect(advances.filter((position) => position > first.position).length).toBeLessThanOrEqual(3);
    const counted = await countingState(t.dataSource, Windowed.prefix);
    expect(counted.duplicates).toEqual([]);
    expect(counted.positions).toEqual(expect.arrayContaining([first.position, ...burst.map((appended) => appended.position)]));
    expect(counted.n).toBe(13);
  });
});
