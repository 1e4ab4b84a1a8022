// Review of b4ba59a/e4e70f4 (segment-targeted wake-ups; a partial batch taken to its end waits without
// reading again): a segment whose runner is busy applying its own batch when another segment's event
// is appended gets that wake-up deferred to the idle tick, which may fire while the batch still runs.
// The wake-up must not be lost: the runner passes the event after its batch, long before the poll.
import { afterAll, beforeAll, describe, it } from '@jest/globals';
import { NO_STREAM, segmentOfKey } from '../src/event-sourcing/index.js';
import { type EventStoreModule, startEventStoreModule } from './support/event-store-module.js';
import {
  Ticked,
  createCountingTables,
  defineCountingProjection,
  eventually,
  gate,
  headOfLog,
  rows,
} from './support/projection-fixtures.js';

const SEGMENTS = 2;
const Ticks = defineCountingProjection('busy-wake-ticks', 'async', [Ticked]);

async function segmentPositions(module: EventStoreModule): Promise<number[]> {
  const found = await rows<{ position: string }>(
    module.dataSource,
    'SELECT position FROM projection_checkpoints WHERE projection = $1 ORDER BY segment',
    [Ticks.projectionName],
  );
  return found.map((row) => Number(row.position));
}

function streamIn(segment: number, tag: string): string {
  for (let n = 0; ; n++) if (segmentOfKey(`${tag}-${n}`, SEGMENTS) === segment) return `${tag}-${n}`;
}

describe('a deferred wake-up while the segment applies a batch of its own', () => {
  let t: EventStoreModule;

  beforeAll(async () => {
    t = await startEventStoreModule({
      events: [Ticked],
      projections: [Ticks],
      // No poll within the test (20 s waits at most): whatever moves a checkpoint here is a wake-up.
      engine: {
        pollIntervalMs: 120_000,
        leaseTtlMs: 120_000,
        batchWindowMs: 0,
        segments: { default: SEGMENTS, byName: {} },
        idleSegmentDelayMs: 20,
      },
    });
    await createCountingTables(t.database.url, Ticks.prefix);
    const head = await headOfLog(t.dataSource);
    await eventually('every segment at the head', async () =>
      (await segmentPositions(t)).every((position) => position >= head.position) ? true : undefined,
    );
  });
  afterAll(() => t?.close());

  it('is not lost: the segment passes the other event after its batch, without a poll', async () => {
    const held = gate();
    const applying = gate();
    const own = streamIn(0, 'own');
    Ticks.behaviour.onApplied = async (event) => {
      if (event.streamId !== own) return;
      Ticks.behaviour.onApplied = undefined;
      applying.open();
      await held.promise;
    };
    await t.store.append(own, [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
    await applying.promise;

    // Segment 1's event: segment 0 only has to pass it, on the idle tick, which fires while it is busy.
    // (Nobody reads it yet: the batch in flight holds the log's horizon back.)
    let other;
    try {
      other = await t.store.append(streamIn(1, 'other'), [new Ticked({ n: 2 })], { expectedVersion: NO_STREAM });
      await new Promise((resolve) => setTimeout(resolve, 100)); // the idle tick (20 ms) has fired by now
    } finally {
      held.open();
    }
    const position = other.position;
    await eventually('both segments past it', async () =>
      (await segmentPositions(t)).every((reached) => reached >= position) ? true : undefined,
    );
  });
});
