// Hostile review: shared transactions, their failures and their retries alone (Promise.all) on a
// pool of ONE connection, with a read model whose handler fails now and then and another that waits
// on a lock held elsewhere past SHARED_LOCK_TIMEOUT_MS: every event applied exactly once, no hang.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
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
  startEngineModule,
  waitUntilApplied,
} from './support/projection-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const A = defineCountingProjection('review-pool-a', 'async', [Ticked]);
const B = defineCountingProjection('review-pool-b', 'async', [Ticked]);
const C = defineCountingProjection('review-pool-c', 'async', [Ticked]);
const APPENDS = 12;

describe('a pool of one connection', () => {
  let database: TestDatabase;
  let engine: EngineModule;

  beforeAll(async () => {
    database = await createTestDatabase();
    for (const p of [A, B, C]) await createCountingTables(database.url, p.prefix);
    engine = await startEngineModule({
      url: database.url,
      poolSize: 1,
      events: [Ticked],
      projections: [A, B, C],
      engine: { leaseTtlMs: 60_000, pollIntervalMs: 5_000, retryBaseMs: 10, batchWindowMs: 0, maxAttempts: 100 },
    });
    await eventually('leases', async () => {
      for (const p of [A, B, C]) if (!(await checkpointRow(engine.dataSource, p.projectionName))?.leaseOwner) return undefined;
      return true;
    });
  });
  afterAll(async () => {
    await engine?.close();
    await database?.drop();
  });

  it('applies every event once, through failures and lock timeouts', async () => {
    const locker = new pg.Client({ connectionString: database.url });
    await locker.connect();
    try {
      const positions: number[] = [];
      for (let n = 1; n <= APPENDS; n++) {
        if (n === 4) {
          await locker.query('BEGIN');
          await locker.query(`LOCK TABLE ${C.prefix}_log IN SHARE MODE`);
          setTimeout(() => void locker.query('COMMIT'), 400);
        }
        const appended = await engine.store.append(`review-pool-${n}`, [new Ticked({ n })], { expectedVersion: NO_STREAM });
        if (n % 3 === 0) B.behaviour.failures.set(appended.position, 1);
        positions.push(appended.position);
        await sleep(20);
      }
      for (const p of [A, B, C]) await waitUntilApplied(engine.dataSource, p.projectionName, positions[positions.length - 1], 30_000);
      for (const p of [A, B, C]) {
        const state = await countingState(engine.dataSource, p.prefix);
        expect(state.duplicates).toEqual([]);
        expect(state.positions).toEqual(positions);
      }
    } finally {
      await locker.end();
    }
  });
});
