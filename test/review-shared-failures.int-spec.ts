// Hostile review of ReadModelBatchCommits: outcomes a batch meets in a shared transaction that it
// would not meet alone. Each batch's apply is wrapped like the engine's (applyToProjection throws
// ProjectionApplyError, which applyWithRetries counts as a failed attempt of that read model).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { DataSource, type EntityManager } from 'typeorm';
import { dataSourceOptions } from '../src/database/data-source-options.js';
import { ProjectionApplyError } from '../src/event-sourcing/projection.js';
import { type ReadModelBatch, ReadModelBatchCommits } from '../src/event-sourcing/read-model-batch-commits.js';
import { startCuttingProxy } from './support/tcp-proxy.js';
import { FROM, type MigratedDatabase, TO, checkpointPosition, migratedDatabase, seedHeldRow } from './support/batch-commit-fixtures.js';

let db: MigratedDatabase;
let dataSource: DataSource;
let admin: pg.Client;

const seed = (name: string, token?: string) => seedHeldRow(admin, name, token);

const position = (name: string) => checkpointPosition(admin, name);

async function count(tag: string): Promise<number> {
  return Number((await admin.query('SELECT count(*) AS n FROM keyed_writes WHERE tag = $1', [tag])).rows[0].n);
}

/** As the engine: the handler's error wrapped in ProjectionApplyError (index 0: a one-event batch). */
function batch(name: string, work: (manager: EntityManager) => Promise<void>): ReadModelBatch {
  return {
    apply: async (manager) => {
      try {
        await work(manager);
      } catch (error) {
        throw new ProjectionApplyError(0, error);
      }
    },
    move: { name, owner: 'holder', token: '3', from: FROM, to: TO, ttlMs: 60_000 },
  };
}

/** A read model keyed by event: its row's primary key is the event (not idempotent, like most). */
const keyed = (name: string, key: string) =>
  batch(name, async (manager) => {
    await manager.query('INSERT INTO keyed_writes (key, tag) VALUES ($1, $2)', [key, name]);
  });

beforeAll(async () => {
  db = await migratedDatabase(4);
  ({ dataSource, admin } = db);
  await admin.query('CREATE TABLE keyed_writes (key text PRIMARY KEY, tag text)');
});

beforeEach(async () => {
  await admin.query('TRUNCATE keyed_writes');
});

afterAll(async () => {
  await db?.close();
});

describe('shared transaction: an innocent batch must meet the outcome it meets alone', () => {
  // A handler that catches its own failed statement (an "insert, on duplicate ignore" without a
  // savepoint) leaves the transaction aborted and resolves. Alone, its own COMMIT message fails
  // (25P02), which is not counted as a handler failure. Shared, the NEXT batch's first statement
  // failed with 25P02 and that innocent batch was blamed (found in review): rejected with a
  // ProjectionApplyError, which the engine counts against it (and stops it at PROJECTION_MAX_ATTEMPTS).
  it('a batch after one that swallowed its failed statement is not blamed for it', async () => {
    await seed('a');
    await seed('b');
    await admin.query(`INSERT INTO keyed_writes (key, tag) VALUES ('taken', 'x')`);
    const swallowing = batch('a', async (manager) => {
      await manager.query(`INSERT INTO keyed_writes (key, tag) VALUES ('taken', 'a')`).catch(() => undefined);
    });
    const commits = new ReadModelBatchCommits(() => dataSource);
    const outcomes = await Promise.allSettled([commits.commit(swallowing), commits.commit(keyed('b', 'b-1'))]);
    const innocent = outcomes[1];
    expect(innocent.status === 'rejected' && innocent.reason instanceof ProjectionApplyError).toBe(false);
    expect(innocent).toMatchObject({ status: 'fulfilled', value: { checkpoint: TO } });
    expect(await count('b')).toBe(1);
    expect(await position('b')).toBe(7);
  });

  // Found in review: after a connection lost during the shared COMMIT message (the server committed
  // it), every batch was applied again alone. A handler keyed by the event then failed at its first
  // write, before its fence was checked: a handler error (a counted attempt; at
  // PROJECTION_MAX_ATTEMPTS=1 the read model stopped) for a batch that committed. Alone, the same
  // loss only gives the runner a non-handler error (logged, row reloaded, nothing counted): now so.
  it('after a lost shared COMMIT that committed, a retry is refused by its fence, not failed as a handler error', async () => {
    let cut = false;
    const proxy = await startCuttingProxy(db.database.url, (text) => !cut && (cut = text.includes('ledger_advance_checkpoint')));
    const throughProxy = await new DataSource(dataSourceOptions(proxy.url, 2)).initialize();
    const lossy = new ReadModelBatchCommits(() => throughProxy);
    try {
      await seed('a');
      await seed('b');
      const outcomes = await Promise.allSettled([lossy.commit(keyed('a', 'event-1')), lossy.commit(keyed('b', 'event-1b'))]);
      expect(cut).toBe(true);
      for (const outcome of outcomes) {
        expect(outcome.status === 'rejected' && outcome.reason instanceof ProjectionApplyError).toBe(false);
      }
      // The server got the whole message: both batches committed, once.
      for (let waited = 0; (await count('b')) === 0 && waited < 5_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
      expect(await count('a')).toBe(1);
      expect(await count('b')).toBe(1);
      expect(await position('a')).toBe(7);
    } finally {
      await throughProxy.destroy().catch(() => undefined);
      await proxy.close();
    }
  });
});
