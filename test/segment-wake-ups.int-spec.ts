// Segment-targeted wake-ups (issues 14 and 15): an append wakes at once only the segments that have
// something of their own to apply in it; the others move their checkpoints past it later, together
// (PROJECTION_IDLE_SEGMENT_DELAY_MS), and at once when a query waits on the projection.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { NO_STREAM, ProjectionWaiter, segmentOfKey } from '../src/event-sourcing/index.js';
import { type EventStoreModule, startEventStoreModule } from './support/event-store-module.js';
import {
  Ticked,
  createCountingTables,
  defineCountingProjection,
  eventually,
  rows,
  untilNothingHeldBack,
} from './support/projection-fixtures.js';

const SEGMENTS = 4;
const IDLE_SEGMENT_DELAY_MS = 6_000;
const Ticks = defineCountingProjection('wake-ticks', 'async', [Ticked]);

/** Position of each segment row's checkpoint, by segment index. */
async function segmentPositions(module: EventStoreModule, projection: string): Promise<number[]> {
  const found = await rows<{ segment: number; position: string }>(
    module.dataSource,
    'SELECT segment, position FROM projection_checkpoints WHERE projection = $1 ORDER BY segment',
    [projection],
  );
  return found.map((row) => Number(row.position));
}

/** A stream whose key falls in `segment`. */
function streamIn(segment: number, tag: string): string {
  for (let n = 0; ; n++) if (segmentOfKey(`${tag}-${n}`, SEGMENTS) === segment) return `${tag}-${n}`;
}

describe('segment-targeted wake-ups', () => {
  let t: EventStoreModule;

  beforeAll(async () => {
    t = await startEventStoreModule({
      events: [Ticked],
      projections: [Ticks],
      // No poll within the test: whatever moves a checkpoint here is a wake-up.
      engine: {
        pollIntervalMs: 60_000,
        leaseTtlMs: 60_000,
        segments: { default: SEGMENTS, byName: {} },
        idleSegmentDelayMs: IDLE_SEGMENT_DELAY_MS,
      },
    });
    await createCountingTables(t.database.url, Ticks.prefix);
    // Every runner through a pass of its own after a first event: with no event yet, "at the head"
    // held at once, and a runner still starting when the first test appended read it at once (seen
    // twice in one CI run, under the load of the other jest worker).
    const warmUp = await t.store.append(streamIn(0, 'warm-up'), [new Ticked({ n: 0 })], { expectedVersion: NO_STREAM });
    await eventually(
      'every segment past the warm-up event',
      async () => ((await segmentPositions(t, Ticks.projectionName)).every((position) => position >= warmUp.position) ? true : undefined),
      IDLE_SEGMENT_DELAY_MS * 3,
    );
  });
  afterAll(() => t?.close());

  it("an append wakes only its key's segment at once; the others pass it after the idle delay", async () => {
    const before = await segmentPositions(t, Ticks.projectionName);
    expect(before).toHaveLength(SEGMENTS);
    const owner = 2;
    const appended = await t.store.append(streamIn(owner, 'lone'), [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
    const startedAt = performance.now();
    await eventually('the owning segment to apply it', async () =>
      (await segmentPositions(t, Ticks.projectionName))[owner] >= appended.position ? true : undefined,
    );
    await sleep(300);
    const early = await segmentPositions(t, Ticks.projectionName);
    // Only meaningful while the idle delay has not passed (a stalled machine would make it vacuous, not red).
    if (performance.now() - startedAt < IDLE_SEGMENT_DELAY_MS - 500) {
      expect(early.filter((_, segment) => segment !== owner)).toEqual(before.filter((_, segment) => segment !== owner));
    }
    await eventually(
      'the other segments to pass it on their own',
      async () => ((await segmentPositions(t, Ticks.projectionName)).every((position) => position >= appended.position) ? true : undefined),
      IDLE_SEGMENT_DELAY_MS * 3,
    );
  });

  it('a query waiting for a position does not wait for the idle delay: the idle segments are hurried', async () => {
    const appended = await t.store.append(streamIn(1, 'read-your-writes'), [new Ticked({ n: 2 })], { expectedVersion: NO_STREAM });
    // Timed from when commit-safe readers can see it: a transaction of another test file (the horizon
    // is server-wide) may hold it back longer than the wait below, hurried or not.
    await untilNothingHeldBack(t.dataSource);
    const waiter = t.moduleRef.get(ProjectionWaiter);
    const startedAt = performance.now();
    // Every segment must have passed the event for the projection to reflect it (the earliest decides).
    const reflected = await waiter.waitFor(Ticks.projectionName, appended.position, IDLE_SEGMENT_DELAY_MS / 2);
    expect(reflected).toBeGreaterThanOrEqual(appended.position);
    expect(performance.now() - startedAt).toBeLessThan(IDLE_SEGMENT_DELAY_MS);
  });
});
