// Hostile review (found, fixed): while a second batch of a row waited for the first, every batch
// that arrived meanwhile, of any other read model, waited for the whole group to be
// answered — including a retry alone that waits on a lock with no limit. A held read model then
// holds back others (only when one row has two batches queued at once: not reachable from one
// engine's runners, which await each commit; reachable by any other caller of commitLiveBatch).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { DataSource, EntityManager } from 'typeorm';
import { type ReadModelBatch, ReadModelBatchCommits } from '../src/event-sourcing/read-model-batch-commits.js';
import { FROM, type MigratedDatabase, TO, migratedDatabase, seedHeldRow } from './support/batch-commit-fixtures.js';

let db: MigratedDatabase;
let dataSource: DataSource;
let admin: pg.Client;

const seed = (name: string, token?: string) => seedHeldRow(admin, name, token);

function batch(name: string, table: string, extra?: (manager: EntityManager) => Promise<void>): ReadModelBatch {
  return {
    apply: async (manager) => {
      await manager.query(`INSERT INTO ${table} VALUES ($1)`, [name]);
      if (extra) await extra(manager);
    },
    move: { name, owner: 'holder', token: '3', from: FROM, to: TO, ttlMs: 60_000 },
  };
}

beforeAll(async () => {
  db = await migratedDatabase(6);
  ({ dataSource, admin } = db);
  await admin.query('CREATE TABLE free_writes (tag text)');
  await admin.query('CREATE TABLE held_writes (tag text)');
});

afterAll(async () => {
  await db?.close();
});

describe('a read model held by a lock', () => {
  it('does not hold back a batch of another read model that arrives while it waits', async () => {
    for (const name of ['a', 'b', 'c']) await seed(name);
    const commits = new ReadModelBatchCommits(() => dataSource);
    const locker = new pg.Client({ connectionString: db.database.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE held_writes IN SHARE MODE');
      const held = commits.commit(batch('a', 'held_writes'));
      const b = commits.commit(batch('b', 'free_writes'));
      const again = commits.commit(batch('a', 'free_writes')); // a second batch of row a: waits in `later`
      await sleep(300); // the shared transaction timed out; a waits alone, b committed
      expect((await b)?.checkpoint).toEqual(TO);
      const c = commits.commit(batch('c', 'free_writes'));
      const outcome = await Promise.race([c.then(() => 'committed'), sleep(2_000, undefined, { ref: false }).then(() => 'still waiting')]);
      await locker.query('COMMIT');
      await Promise.allSettled([held, again, c]);
      expect(outcome).toBe('committed');
    } finally {
      await locker.end();
    }
  });
});
