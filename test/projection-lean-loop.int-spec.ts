// The projection runner's lean hot loop (issue 7): one statement reads a batch and tells whether later
// commits are held back; a batch a projection has nothing to do with moves its checkpoint in one fenced
// statement, with no transaction and no handler call; operators' changes reach a running runner.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import {
  EventType,
  NO_STREAM,
  ProjectionAdmin,
  ProjectionCheckpoints,
  ProjectionEngine,
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

describe('the projection runner hot loop', () => {
  let t: EventStoreModule;
  let checkpoints: ProjectionCheckpoints;
  let engine: ProjectionEngine;

  beforeAll(async () => {
    t = await startEventStoreModule({
      events: [Ticked, Tocked],
      projections: [TicksOnly],
      // A quiet runner looks at the log on its own only every 20 s (a third of the lease): whatever
      // this suite waits for much less than that came from a notification.
      engine: { pollIntervalMs: 60_000, batchSize: 100, leaseTtlMs: 60_000, retryBaseMs: 5, maxAttempts: 3 },
    });
    await createCountingTables(t.database.url, TicksOnly.prefix);
    checkpoints = t.moduleRef.get(ProjectionCheckpoints);
    engine = t.moduleRef.get(ProjectionEngine);
  });
  afterAll(() => t?.close());

  const append = (events: object[]) => t.store.append(`stream-${randomUUID()}`, events, { expectedVersion: NO_STREAM });

  it('readBatch returns what readAll returns, and says when a later commit is held back by an older transaction', async () => {
    const start = await headOfLog(t.dataSource);
    const first = await append([new Tocked({ n: 1 }), new Tocked({ n: 2 })]);
    await eventually('the two events to be readable', async () => {
      const batch = await t.store.readBatch(start, 100);
      return batch.events.length === 2 ? batch : undefined;
    });
    const limited = await t.store.readBatch(start, 1);
    expect(limited.events.map((event) => event.position)).toEqual([first.events[0].position]);
    const all = await t.store.readAll(start, 100);
    expect((await t.store.readBatch(start, 100)).events.map((event) => event.position)).toEqual(all.events.map((event) => event.position));

    // An older transaction in flight that appends nothing (as a projection's batch or a lease renewal).
    const holder = new pg.Client({ connectionString: t.database.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_current_xact_id()');
      const later = await append([new Tocked({ n: 3 })]);
      const held = await t.store.readBatch(all.checkpoint, 100);
      expect(held.events).toEqual([]);
      expect(held.heldBack).toBe(true);
      await holder.query('COMMIT');
      // Other suites' transactions on the same server can hold the horizon back for a moment too.
      const released = await eventually('the later event to be released', async () => {
        const batch = await t.store.readBatch(all.checkpoint, 100);
        return batch.events.length > 0 && !batch.heldBack ? batch : undefined;
      });
      expect(released.events.map((event) => event.position)).toEqual([later.position]);
      expect(released.events[0].data).toBeInstanceOf(Tocked);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    }
  });

  // With a 20 s poll, these waits also show that the runner never misses a notification.
  it('a batch with no event the projection handles moves its checkpoint without calling a handler; a later handled event is applied once', async () => {
    const before = await countingState(t.dataSource, TicksOnly.prefix);
    const ignored = await append([new Tocked({ n: 10 }), new Tocked({ n: 11 }), new Tocked({ n: 12 })]);
    await waitUntilApplied(t.dataSource, TicksOnly.projectionName, ignored.position);
    for (const event of ignored.events) expect(TicksOnly.behaviour.calls.get(event.position)).toBeUndefined();
    expect(await countingState(t.dataSource, TicksOnly.prefix)).toEqual(before);

    const ticked = await append([new Tocked({ n: 13 }), new Ticked({ n: 14 })]);
    await waitUntilApplied(t.dataSource, TicksOnly.projectionName, ticked.position);
    const after = await countingState(t.dataSource, TicksOnly.prefix);
    expect(after.n).toBe(before.n + 1);
    expect(after.positions.filter((position) => !before.positions.includes(position))).toEqual([ticked.events[1].position]);
    expect(after.duplicates).toEqual([]);
  });

  it('advancePast is fenced: another owner, a moved checkpoint or a failed projection change nothing', async () => {
    const row = (await checkpointRow(t.dataSource, TicksOnly.projectionName))!;
    const head = await headOfLog(t.dataSource);
    const owner = row.leaseOwner!;
    expect(owner).toBe(engine.owner);
    const ttl = 5_000;
    expect(await checkpoints.advancePast(TicksOnly.projectionName, 'someone-else', row.checkpoint, head, ttl)).toBe(false);
    expect(await checkpoints.advancePast(TicksOnly.projectionName, owner, START_OF_LOG, head, ttl)).toBe(false);
    const unchanged = (await checkpointRow(t.dataSource, TicksOnly.projectionName))!;
    expect(compareCheckpoints(unchanged.checkpoint, row.checkpoint)).toBe(0);
  });

  it("an operator's rebuild request reaches the idle runner at once (it reloads its row), although it polls only every 20 s", async () => {
    const completedAt = async () =>
      (await t.dataSource.query('SELECT rebuild_completed_at FROM projection_checkpoints WHERE name = $1', [TicksOnly.projectionName]))[0]
        .rebuild_completed_at as Date | null;
    const ticked = await append([new Ticked({ n: 20 })]);
    await waitUntilApplied(t.dataSource, TicksOnly.projectionName, ticked.position);
    const before = await completedAt();
    await t.moduleRef.get(ProjectionAdmin).rebuild(TicksOnly.projectionName);
    await eventually('the rebuild to be swapped in', async () => {
      const after = await completedAt();
      return after && after.getTime() !== before?.getTime() ? after : undefined;
    }, 8_000);
    const rebuilt = await countingState(t.dataSource, TicksOnly.prefix);
    expect(rebuilt.positions).toContain(ticked.events[0].position);
    expect(rebuilt.duplicates).toEqual([]);
    expect((await checkpointRow(t.dataSource, TicksOnly.projectionName))?.rebuildStatus).toBeNull();
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
    const batches: number[] = [];
    t.moduleRef.get(ProjectionEngine).progress.on('advanced', (name: string, checkpoint: { position: number }) => {
      if (name === Windowed.projectionName) batches.push(checkpoint.position);
    });
    await new Promise((resolve) => setTimeout(resolve, WINDOW_MS)); // quiet for a whole window
    const first = await tick(0);
    const sentAt = Date.now();
    await waitUntilApplied(t.dataSource, Windowed.projectionName, first.position);
    expect(Date.now() - sentAt).toBeLessThan(WINDOW_MS); // not held for the window

    batches.length = 0;
    const burst = [];
    for (let n = 1; n <= 12; n++) {
      burst.push(await tick(n)); // one transaction each, a few milliseconds apart
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const last = burst.map((appended) => appended.position).sort((a, b) => a - b).at(-1)!;
    await waitUntilApplied(t.dataSource, Windowed.projectionName, last);
    // Twelve transactions committed one after the other within one window (without it, about one
    // batch each): they wait for the window and go together. A commit held back by an older
    // transaction in flight may cost one more batch.
    expect(batches.length).toBeLessThanOrEqual(2);
    const counted = await countingState(t.dataSource, Windowed.prefix);
    expect(counted.duplicates).toEqual([]);
    expect(counted.positions).toEqual(expect.arrayContaining([first.position, ...burst.map((appended) => appended.position)]));
    expect(counted.n).toBe(13);
  });
});
