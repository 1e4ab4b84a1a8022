// Review of e4e70f4 (a read model's live batch fenced at its end): a batch now writes the live tables
// before it locks its checkpoint row, while a rebuild's swap locks every segment's row and then
// writes the live tables. A batch of another segment caught between the two is a lock cycle:
// PostgreSQL aborts the swap (it waited first), and the failure counts as a rebuild attempt (with
// maxAttempts 1, the rebuild is abandoned).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { NO_STREAM, segmentOfKey } from '../src/event-sourcing/index.js';
import {
  countingState,
  createCountingTables,
  defineCountingProjection,
  type EngineModule,
  eventually,
  gate,
  rebuildEnded,
  rows,
  startEngineModule,
  Ticked,
  waitUntilApplied,
} from './support/projection-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const SEGMENTS = 2;
const Ticks = defineCountingProjection('swap-vs-batch', 'async', [Ticked]);

function streamIn(segment: number, tag: string): string {
  for (let n = 0; ; n++) if (segmentOfKey(`${tag}-${n}`, SEGMENTS) === segment) return `${tag}-${n}`;
}

async function deadlocks(engine: EngineModule): Promise<number> {
  const [row] = await rows<{ n: string }>(
    engine.dataSource,
    'SELECT deadlocks AS n FROM pg_stat_database WHERE datname = current_database()',
  );
  return Number(row.n);
}

describe('a rebuild swapping in while another segment applies a live batch', () => {
  let database: TestDatabase;
  let engine: EngineModule;
  /** The live batch the test holds open: released before the engine closes even when the test fails (the close would wait for it). */
  let held: ReturnType<typeof gate> | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
    await createCountingTables(database.url, Ticks.prefix);
    engine = await startEngineModule({
      url: database.url,
      events: [Ticked],
      projections: [Ticks],
      // One attempt: a swap that fails once abandons the rebuild, so the failure is visible.
      engine: {
        segments: { default: SEGMENTS, byName: {} },
        leaseTtlMs: 30_000,
        pollIntervalMs: 100,
        retryBaseMs: 10,
        batchWindowMs: 0,
        maxAttempts: 1,
      },
    });
    await eventually('every segment leased', async () => {
      const leased = await rows(
        engine.dataSource,
        'SELECT 1 FROM projection_checkpoints WHERE projection = $1 AND lease_owner IS NOT NULL',
        [Ticks.projectionName],
      );
      return leased.length === SEGMENTS ? true : undefined;
    });
  });
  afterAll(async () => {
    held?.open();
    Ticks.behaviour.onApplied = undefined;
    await engine?.close();
    await database?.drop();
  });

  it('neither deadlocks nor fails the rebuild; every event counted once', async () => {
    const first = await engine.store.append(streamIn(0, 'zero'), [new Ticked({ n: 1 }), new Ticked({ n: 2 })], {
      expectedVersion: NO_STREAM,
    });
    await waitUntilApplied(engine.dataSource, Ticks.projectionName, first.position);

    // Segment 1's next batch stops after writing its rows (the counter row locked), before its fence.
    held = gate();
    const applying = gate();
    const late = streamIn(1, 'one');
    Ticks.behaviour.onApplied = async (event) => {
      if (event.streamId !== late) return;
      Ticks.behaviour.onApplied = undefined;
      applying.open();
      await held!.promise;
    };
    const lateAppend = await engine.store.append(late, [new Ticked({ n: 3 })], { expectedVersion: NO_STREAM });
    await applying.promise;
    const deadlocksBefore = await deadlocks(engine);

    await engine.admin.rebuild(Ticks.projectionName);
    // The swap waits for the batch's locks; then the batch goes on to its fence.
    await eventually('the swap to wait for the batch', async () => {
      const waiting = await rows(
        engine.dataSource,
        "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
      );
      return waiting.length > 0 ? true : undefined;
    });
    held.open();

    const done = await rebuildEnded(engine.admin, Ticks.projectionName);
    await waitUntilApplied(engine.dataSource, Ticks.projectionName, lateAppend.position);
    expect(done.lastError).toBeNull();
    expect(await deadlocks(engine)).toBe(deadlocksBefore);
    const state = await countingState(engine.dataSource, Ticks.prefix);
    expect(state.n).toBe(3);
    expect(state.duplicates).toEqual([]);
  });
});
