// Hostile review, through the engine: a read model whose handler catches its own failed statement
// (an "insert, ignore the duplicate" without a savepoint) leaves the shared transaction aborted.
// Alone, that read model's COMMIT message fails (25P02): logged and tried again, never counted.
// Shared (found in review, fixed), the NEXT read model's first statement failed with 25P02 and that
// innocent read model was counted a failed attempt; at PROJECTION_MAX_ATTEMPTS it is stopped, while the culprit runs on.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { type EntityManager } from 'typeorm';
import { NO_STREAM, type Projection, ProjectionHandlers, type RecordedEvent } from '../src/event-sourcing/index.js';
import {
  type EngineModule,
  Ticked,
  checkpointRow,
  createCountingTables,
  defineCountingProjection,
  eventually,
  startEngineModule,
  waitUntilApplied,
  withClient,
} from './support/projection-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

/** Sorts before the innocent one ('review-swallow-a' < 'review-swallow-b'): its batch goes first in a shared transaction. */
@Injectable()
class Swallowing implements Projection {
  static poison = -1;
  readonly name = 'review-swallow-a';
  readonly mode = 'async' as const;
  readonly tables = ['review_swallow_rows'];
  readonly handlers = new ProjectionHandlers().on(Ticked, async (event: RecordedEvent, manager: EntityManager) => {
    const key = event.position === Swallowing.poison ? 'taken' : String(event.position);
    await manager.query('INSERT INTO review_swallow_rows (key) VALUES ($1)', [key]).catch(() => undefined); // "already there: fine"
  });
}

const Innocent = defineCountingProjection('review-swallow-b', 'async', [Ticked]);
const MAX_ATTEMPTS = 3;

describe('a read model that swallows its own failed statement', () => {
  let database: TestDatabase;
  let engine: EngineModule;

  beforeAll(async () => {
    database = await createTestDatabase();
    await createCountingTables(database.url, Innocent.prefix);
    await withClient(database.url, async (client) => {
      await client.query('CREATE TABLE review_swallow_rows (key text PRIMARY KEY)');
      await client.query(`INSERT INTO review_swallow_rows VALUES ('taken')`);
    });
    engine = await startEngineModule({
      url: database.url,
      events: [Ticked],
      projections: [Swallowing, Innocent],
      engine: { leaseTtlMs: 60_000, pollIntervalMs: 5_000, retryBaseMs: 10, batchWindowMs: 0, maxAttempts: MAX_ATTEMPTS },
    });
    await eventually('leases', async () =>
      (await checkpointRow(engine.dataSource, 'review-swallow-a'))?.leaseOwner &&
      (await checkpointRow(engine.dataSource, Innocent.projectionName))?.leaseOwner
        ? true
        : undefined,
    );
  });
  afterAll(async () => {
    await engine?.close();
    await database?.drop();
  });

  it('never counts a failure against, nor stops, another read model', async () => {
    const blamed: string[] = [];
    const checkpoints = engine.checkpoints as unknown as { recordFailure: (...args: unknown[]) => Promise<unknown> };
    const recordFailure = checkpoints.recordFailure.bind(checkpoints);
    checkpoints.recordFailure = (...args: unknown[]) => {
      blamed.push(`${String(args[0])}: ${String(args[3])}`);
      return recordFailure(...args);
    };
    const first = await engine.store.append('review-swallow-1', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
    await waitUntilApplied(engine.dataSource, Innocent.projectionName, first.position);
    const [{ next }] = await withClient(
      database.url,
      async (client) => (await client.query('SELECT last_value + 1 AS next FROM events_position_seq')).rows,
    );
    Swallowing.poison = Number(next);
    const poison = await engine.store.append('review-swallow-2', [new Ticked({ n: 2 })], { expectedVersion: NO_STREAM });
    expect(poison.position).toBe(Swallowing.poison);
    // Alone, the innocent read model applies it at once: shared, too.
    await waitUntilApplied(engine.dataSource, Innocent.projectionName, poison.position, 5_000);
    // The culprit keeps failing (alone: at its COMMIT, never counted); the innocent one must not be blamed meanwhile.
    for (let n = 3; n <= 8; n++) {
      await engine.store.append(`review-swallow-${n}`, [new Ticked({ n })], { expectedVersion: NO_STREAM });
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    expect(blamed.filter((entry) => entry.startsWith(Innocent.projectionName))).toEqual([]);
    const row = await checkpointRow(engine.dataSource, Innocent.projectionName);
    expect(row?.lastError ?? null).toBeNull();
    expect(row?.status).toBe('running');
  });
});
