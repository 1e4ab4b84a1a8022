// One read of the log per wake-up when a batch is taken to its end (issue 14): the runner used to
// look again at once after every batch, a round trip that at one append at a time found nothing.
// What commits while it applies must still be applied at once, not at the next poll.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { NO_STREAM } from '../src/event-sourcing/index.js';
import { CommitOrderLog } from '../src/event-sourcing/commit-order-log.js';
import {
  type EngineModule,
  Ticked,
  checkpointRow,
  createCountingTables,
  defineCountingProjection,
  eventually,
  startEngineModule,
} from './support/projection-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const Ticks = defineCountingProjection('read-once', 'async', [Ticked]);
/** No poll within a test: whatever reads the log here was woken by an append. */
const POLL_MS = 60_000;

describe('the live loop after a batch taken to its end', () => {
  let database: TestDatabase;
  let engine: EngineModule;
  const reads = jest.spyOn(CommitOrderLog.prototype, 'readBatch');

  const reached = async (position: number) =>
    Number((await checkpointRow(engine.dataSource, Ticks.projectionName))?.checkpoint.position) >= position ? true : undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
    await createCountingTables(database.url, Ticks.prefix);
    engine = await startEngineModule({
      url: database.url,
      events: [Ticked],
      projections: [Ticks],
      engine: { leaseTtlMs: 120_000, pollIntervalMs: POLL_MS, batchWindowMs: 0 },
    });
    const first = await engine.store.append('read-once-warm', [new Ticked({ n: 0 })], { expectedVersion: NO_STREAM });
    await eventually('the engine to catch up', () => reached(first.position));
  });
  afterAll(async () => {
    reads.mockRestore();
    await engine?.close();
    await database?.drop();
  });

  it('a lone append costs the projection one read of the log', async () => {
    await new Promise((resolve) => setTimeout(resolve, 200));
    reads.mockClear();
    const appended = await engine.store.append('read-once-lone', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
    await eventually('the append to be applied', () => reached(appended.position));
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The horizon is the whole server's: a transaction of another test file, in another database,
    // may hold the append back for a moment, and a held-back read is looked at again (legitimately).
    // What must not happen is a second read after the one that found the append and nothing held back.
    const batches = await Promise.all(reads.mock.results.map((result) => result.value as ReturnType<CommitOrderLog['readBatch']>));
    const clear = batches.filter((batch) => !batch.heldBack);
    expect(clear.map((batch) => batch.events.map((event) => event.position))).toEqual([[appended.position]]);
  });

  it('an append committed while a batch applies is applied at once after it, not at the next poll', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let applying!: () => void;
    const started = new Promise<void>((resolve) => (applying = resolve));
    Ticks.behaviour.onApplied = async () => {
      Ticks.behaviour.onApplied = undefined;
      applying();
      await gate;
    };
    await engine.store.append('read-once-busy', [new Ticked({ n: 2 })], { expectedVersion: NO_STREAM });
    await started;
    const during = await engine.store.append('read-once-during', [new Ticked({ n: 3 })], { expectedVersion: NO_STREAM });
    release();
    const startedAt = performance.now();
    await eventually('the append made during the batch to be applied', () => reached(during.position), 10_000);
    expect(performance.now() - startedAt).toBeLessThan(POLL_MS / 2);
  });
});
