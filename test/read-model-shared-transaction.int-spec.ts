// Through the engine: one append wakes two read models, which read the log together and commit their
// batches in one transaction (ReadModelBatchCommits). A handler that keeps failing in one of them
// must not hold the other back nor make it apply anything twice.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { NO_STREAM } from '../src/event-sourcing/index.js';
import {
  type EngineModule,
  Ticked,
  checkpointRow,
  countingState,
  countingTables,
  createCountingTables,
  defineCountingProjection,
  eventually,
  rows,
  startEngineModule,
  waitUntilApplied,
} from './support/projection-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const Left = defineCountingProjection('shared-tx-left', 'async', [Ticked]);
const Right = defineCountingProjection('shared-tx-right', 'async', [Ticked]);
const MAX_ATTEMPTS = 3;
const APPENDS = 10;

/** The transaction that wrote each logged position of a counting projection. */
async function writers(engine: EngineModule, prefix: string): Promise<Map<number, string>> {
  const logged = await rows<{ position: string; xid: string }>(
    engine.dataSource,
    `SELECT position, xmin::text AS xid FROM ${countingTables(prefix).log}`,
  );
  return new Map(logged.map((row) => [Number(row.position), row.xid]));
}

describe('two read models woken by one append', () => {
  let database: TestDatabase;
  let engine: EngineModule;

  beforeAll(async () => {
    database = await createTestDatabase();
    await createCountingTables(database.url, Left.prefix);
    await createCountingTables(database.url, Right.prefix);
    engine = await startEngineModule({
      url: database.url,
      events: [Ticked],
      projections: [Left, Right],
      // A long poll: no runner reloads its row on a timer of its own between two appends (which would put it a turn behind).
      engine: { leaseTtlMs: 60_000, pollIntervalMs: 5_000, retryBaseMs: 10, batchWindowMs: 0, maxAttempts: MAX_ATTEMPTS },
    });
    await eventually('both to hold their leases', async () =>
      (await checkpointRow(engine.dataSource, Left.projectionName))?.leaseOwner &&
      (await checkpointRow(engine.dataSource, Right.projectionName))?.leaseOwner
        ? true
        : undefined,
    );
  });
  afterAll(async () => {
    await engine?.close();
    await database?.drop();
  });

  it('apply it in one transaction', async () => {
    for (let n = 1; n <= APPENDS; n++) {
      const appended = await engine.store.append(`shared-tx-${n}`, [new Ticked({ n })], { expectedVersion: NO_STREAM });
      await waitUntilApplied(engine.dataSource, Left.projectionName, appended.position);
      await waitUntilApplied(engine.dataSource, Right.projectionName, appended.position);
    }
    const [left, right] = [await writers(engine, Left.prefix), await writers(engine, Right.prefix)];
    expect(left.size).toBe(APPENDS);
    // Each lone append: both read models read it in the same turn, so their batches share the
    // transaction. Sharing is taken when it comes (batches ready in the same turn): a runner may be a
    // turn behind now and then (a lease renewal, a reload of its row), so most, not all (none before).
    const shared = [...left].filter(([position, xid]) => right.get(position) === xid);
    expect(shared.length).toBeGreaterThanOrEqual(APPENDS - 3);
    expect(engine.checkpoints.batchCommits.stats.shared).toBeGreaterThanOrEqual(APPENDS - 3);
  });

  it('one that keeps failing stops alone: the other applies every event once', async () => {
    const before = {
      left: await countingState(engine.dataSource, Left.prefix),
      right: await countingState(engine.dataSource, Right.prefix),
    };
    // Nothing else appends here: the next event's position is the sequence's next value.
    const [{ next }] = await rows<{ next: string }>(engine.dataSource, 'SELECT last_value + 1 AS next FROM events_position_seq');
    Right.behaviour.failures.set(Number(next), 'always');
    const poison = await engine.store.append('shared-tx-poison', [new Ticked({ n: 100 })], { expectedVersion: NO_STREAM });
    expect(poison.position).toBe(Number(next));
    const after = await engine.store.append('shared-tx-after', [new Ticked({ n: 101 })], { expectedVersion: NO_STREAM });
    await waitUntilApplied(engine.dataSource, Left.projectionName, after.position);
    await eventually('the failing one to stop', async () =>
      (await checkpointRow(engine.dataSource, Right.projectionName))?.status === 'failed' ? true : undefined,
    );
    const left = await countingState(engine.dataSource, Left.prefix);
    const right = await countingState(engine.dataSource, Right.prefix);
    expect(left.duplicates).toEqual([]);
    expect(left.positions).toEqual([...before.left.positions, poison.position, after.position]);
    expect(right.duplicates).toEqual([]);
    expect(right.positions).not.toContain(poison.position);
    expect(right.positions).not.toContain(after.position);
    expect((await checkpointRow(engine.dataSource, Right.projectionName))?.failedPosition).toBe(poison.position);
  });
});
