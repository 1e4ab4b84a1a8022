// A read model's live batch ends by moving its checkpoint, fenced (lease owner and token, running,
// checkpoint still where the batch started), in the batch's transaction. That UPDATE locks the lease
// row until COMMIT. Sent as two round trips, a holder paused between them (a GC pause, SIGSTOP, a
// saturated event loop) keeps the lock, and the next holder's takeover — an UPDATE of the same row —
// waits for it, up to the idle-in-transaction timeout. Sent in one message, the lock lasts only as
// long as the server takes to run the COMMIT; it is also one round trip fewer per batch.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { NO_STREAM } from '../src/event-sourcing/index.js';
import {
  type EngineModule,
  Ticked,
  checkpointRow,
  countingState,
  createCountingTables,
  defineCountingProjection,
  eventually,
  rows,
  startEngineModule,
} from './support/projection-fixtures.js';
import { pauseAfterStatement, restore, takeOverWithin } from './support/paused-holder.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const Ticks = defineCountingProjection('read-model-commit', 'async', [Ticked]);
/** How long the holder is "paused" once its checkpoint has moved: far longer than the takeover waits. */
const PAUSE_MS = 3_000;
/** How long the takeover may wait for the row's lock before it gives up (lock_timeout). */
const TAKEOVER_LOCK_TIMEOUT_MS = 1_000;

/** The statement that moves a read model's checkpoint at the end of its batch, before and after this change. */
function movesReadModelCheckpoint(text: string): boolean {
  return text.includes('ledger_advance_checkpoint') || (text.includes('UPDATE projection_checkpoints') && text.includes('RETURNING *'));
}

describe("a read model's batch moves its checkpoint and commits in one message", () => {
  let database: TestDatabase;
  let engine: EngineModule;

  beforeAll(async () => {
    database = await createTestDatabase();
    await createCountingTables(database.url, Ticks.prefix);
    engine = await startEngineModule({
      url: database.url,
      events: [Ticked],
      projections: [Ticks],
      engine: { leaseTtlMs: 60_000, pollIntervalMs: 100, retryBaseMs: 10, batchWindowMs: 0 },
    });
    await eventually('the engine to hold the lease', async () =>
      (await checkpointRow(engine.dataSource, Ticks.projectionName))?.leaseOwner ? true : undefined,
    );
  });
  afterEach(restore);
  afterAll(async () => {
    restore();
    await engine?.close();
    await database?.drop();
  });

  it('a holder paused once its checkpoint moved keeps no takeover waiting, and its batch is committed', async () => {
    const moved = pauseAfterStatement(movesReadModelCheckpoint, PAUSE_MS);
    const appended = await engine.store.append('read-model-commit-1', [new Ticked({ n: 1 }), new Ticked({ n: 2 })], {
      expectedVersion: NO_STREAM,
    });
    await moved;
    await expect(
      takeOverWithin(database.url, 'projection = $1', Ticks.projectionName, 'next-holder', TAKEOVER_LOCK_TIMEOUT_MS),
    ).resolves.toBeUndefined();
    // The move and the COMMIT went together, before the takeover: the batch and its checkpoint are stored.
    const row = await checkpointRow(engine.dataSource, Ticks.projectionName);
    expect(row?.leaseOwner).toBe('next-holder');
    expect(Number(row?.checkpoint.position)).toBe(appended.position);
    const state = await countingState(engine.dataSource, Ticks.prefix);
    expect(state.positions).toEqual(appended.events.map((event) => event.position));
    expect(state.n).toBe(2);
  });

  it('a batch refused at its end leaves nothing written, the connection goes back to the pool usable, and the event is applied once later', async () => {
    // The lease comes back to the engine (the takeover above set it to 'next-holder').
    await engine.dataSource.query(`UPDATE projection_checkpoints SET lease_expires_at = clock_timestamp() WHERE projection = $1`, [
      Ticks.projectionName,
    ]);
    await eventually('the engine to hold the lease again', async () =>
      (await checkpointRow(engine.dataSource, Ticks.projectionName))?.leaseOwner === 'next-holder' ? undefined : true,
    );
    const before = await countingState(engine.dataSource, Ticks.prefix);
    // While the batch applies, another holder takes over: the checkpoint's move at its end is refused.
    let intruded!: () => void;
    const intrusion = new Promise<void>((resolve) => (intruded = resolve));
    Ticks.behaviour.onApplied = async () => {
      Ticks.behaviour.onApplied = undefined;
      await withTakeover('intruder');
      intruded();
    };
    const appended = await engine.store.append('read-model-commit-2', [new Ticked({ n: 3 })], { expectedVersion: NO_STREAM });
    await intrusion;
    await eventually('the refused batch to be over', async () => ((await idleInTransaction()) === 0 ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await countingState(engine.dataSource, Ticks.prefix)).toEqual(before);
    expect(Number((await checkpointRow(engine.dataSource, Ticks.projectionName))?.checkpoint.position)).toBeLessThan(appended.position);
    const answers = await Promise.all(Array.from({ length: 12 }, () => engine.dataSource.query('SELECT 1 AS one')));
    expect(answers.every((result: Array<{ one: number }>) => result[0].one === 1)).toBe(true);

    // The intruder's lease ends: the engine takes the segment back and applies the event once.
    await engine.dataSource.query(`UPDATE projection_checkpoints SET lease_expires_at = clock_timestamp() WHERE projection = $1`, [
      Ticks.projectionName,
    ]);
    await eventually(
      'the engine to apply the event again',
      async () =>
        Number((await checkpointRow(engine.dataSource, Ticks.projectionName))?.checkpoint.position) >= appended.position ? true : undefined,
      20_000,
    );
    const after = await countingState(engine.dataSource, Ticks.prefix);
    expect(after.positions).toEqual([...before.positions, appended.position]);
    expect(after.n).toBe(before.n + 1);
  });

  /** Another holder takes the lease, from a connection of its own. */
  async function withTakeover(owner: string): Promise<void> {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      await client.query(
        `UPDATE projection_checkpoints SET lease_owner = $2, lease_token = lease_token + 1,
           lease_expires_at = clock_timestamp() + interval '1 hour' WHERE projection = $1`,
        [Ticks.projectionName, owner],
      );
    } finally {
      await client.end();
    }
  }

  async function idleInTransaction(): Promise<number> {
    const [row] = await rows<{ n: string }>(
      engine.dataSource,
      // This database only: pg_stat_activity lists the whole server (other test files' sessions).
      "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    );
    return Number(row.n);
  }
});
