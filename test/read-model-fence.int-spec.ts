// A read model's live batch is fenced at its end (advanceAndCommit, issue 14): the checkpoint row is
// not locked while the batch applies, so a holder that loses the lease in the middle of applying must
// find out at the checkpoint's move and roll the whole batch back.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { NO_STREAM } from '../src/event-sourcing/index.js';
import {
  type EngineModule,
  Ticked,
  checkpointRow,
  countingTables,
  createCountingTables,
  defineCountingProjection,
  eventually,
  rows,
  startEngineModule,
} from './support/projection-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const Ticks = defineCountingProjection('fenced-at-end', 'async', [Ticked]);
const tables = countingTables(Ticks.prefix);

describe('a read model whose holder loses the lease while it applies a batch', () => {
  let database: TestDatabase;
  let engine: EngineModule;

  beforeAll(async () => {
    database = await createTestDatabase();
    await createCountingTables(database.url, Ticks.prefix);
    engine = await startEngineModule({
      url: database.url,
      events: [Ticked],
      projections: [Ticks],
      engine: { leaseTtlMs: 5_000, pollIntervalMs: 100, retryBaseMs: 10, batchWindowMs: 0 },
    });
    await eventually('the engine to hold the lease', async () =>
      (await checkpointRow(engine.dataSource, Ticks.projectionName))?.leaseOwner ? true : undefined,
    );
  });
  afterAll(async () => {
    await engine?.close();
    await database?.drop();
  });

  it('commits nothing of that batch; once the lease comes back, the events are applied exactly once', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let applying!: () => void;
    const started = new Promise<void>((resolve) => (applying = resolve));
    Ticks.behaviour.onApplied = async () => {
      Ticks.behaviour.onApplied = undefined; // only the first batch waits
      applying();
      await gate;
    };
    const before = await checkpointRow(engine.dataSource, Ticks.projectionName);
    const appended = await engine.store.append('fenced-ticks', [new Ticked({ n: 1 }), new Ticked({ n: 2 })], {
      expectedVersion: NO_STREAM,
    });
    await started;

    // Another holder takes the lease over while the batch is still applying (its rows written,
    // not committed): nothing waits for the batch, as nothing has locked the checkpoint row.
    await engine.dataSource.query(
      `UPDATE projection_checkpoints SET lease_owner = 'intruder', lease_token = lease_token + 1,
         lease_expires_at = clock_timestamp() + interval '1 hour' WHERE projection = $1`,
      [Ticks.projectionName],
    );
    release();

    // The holder that applied must not commit: no row of the batch, the checkpoint where it was.
    await eventually('the refused batch to be over', async () => {
      const [row] = await rows<{ n: string }>(
        engine.dataSource,
        // This database only: pg_stat_activity lists the whole server (other test files' sessions).
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'",
      );
      return Number(row.n) === 0 ? true : undefined;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await rows(engine.dataSource, `SELECT position FROM ${tables.log}`)).toEqual([]);
    const during = await checkpointRow(engine.dataSource, Ticks.projectionName);
    expect(during?.checkpoint).toEqual(before?.checkpoint);
    expect(during?.leaseOwner).toBe('intruder');

    // The intruder's lease ends: the engine takes the segment back and applies each event once.
    await engine.dataSource.query(`UPDATE projection_checkpoints SET lease_expires_at = clock_timestamp() WHERE projection = $1`, [
      Ticks.projectionName,
    ]);
    await eventually(
      'the engine to apply the batch again',
      async () =>
        Number((await checkpointRow(engine.dataSource, Ticks.projectionName))?.checkpoint.position) >= appended.position ? true : undefined,
      20_000,
    );
    const applied = await rows<{ position: string }>(engine.dataSource, `SELECT position FROM ${tables.log} ORDER BY position`);
    expect(applied.map((row) => Number(row.position))).toEqual(appended.events.map((event) => event.position));
    const [count] = await rows<{ n: string }>(engine.dataSource, `SELECT n FROM ${tables.count}`);
    expect(Number(count.n)).toBe(2);
  });
});
