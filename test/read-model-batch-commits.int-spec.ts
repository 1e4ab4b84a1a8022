// Read models' live batches ready in the same turn share one transaction (ReadModelBatchCommits):
// START, each batch's writes, every fenced checkpoint move and the COMMIT in one message. What may
// not change is each batch's own outcome: a failing handler, a refused move (lease lost), a deadlock
// or a lost connection of one batch must neither lose another's batch nor commit anything of its own.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { DataSource, type EntityManager } from 'typeorm';
import { dataSourceOptions } from '../src/database/data-source-options.js';
import { type ReadModelBatch, ReadModelBatchCommits, SHARED_LOCK_TIMEOUT_MS } from '../src/event-sourcing/read-model-batch-commits.js';
import { startCuttingProxy } from './support/tcp-proxy.js';
import { FROM, type MigratedDatabase, TO, checkpointPosition, migratedDatabase, seedHeldRow } from './support/batch-commit-fixtures.js';

let db: MigratedDatabase;
let dataSource: DataSource;
let admin: pg.Client;
let commits: ReadModelBatchCommits;

const seed = (name: string, token?: string) => seedHeldRow(admin, name, token);

const position = (name: string) => checkpointPosition(admin, name);

/** The transaction ids that wrote `tag`'s rows (one per batch that committed it). */
async function writers(tag: string): Promise<string[]> {
  const { rows } = await admin.query<{ xid: string }>('SELECT xmin::text AS xid FROM shared_writes WHERE tag = $1', [tag]);
  return rows.map((row) => row.xid);
}

/** A batch writing one row tagged `tag`, then `extra`, moving checkpoint row `name` (held with `token`). */
function batch(name: string, tag: string, token = '3', extra?: (manager: EntityManager) => Promise<void>): ReadModelBatch {
  return {
    apply: async (manager) => {
      await manager.query('INSERT INTO shared_writes (tag) VALUES ($1)', [tag]);
      if (extra) await extra(manager);
    },
    move: { name, owner: 'holder', token, from: FROM, to: TO, ttlMs: 60_000 },
  };
}

const settled = (promises: ReadonlyArray<Promise<unknown>>) => Promise.allSettled(promises);

beforeAll(async () => {
  db = await migratedDatabase(4);
  ({ dataSource, admin } = db);
  await admin.query('CREATE TABLE shared_writes (tag text, n int UNIQUE)');
  await admin.query('CREATE TABLE held_writes (tag text)');
});

beforeEach(async () => {
  commits = new ReadModelBatchCommits(() => dataSource);
  await admin.query('TRUNCATE shared_writes');
});

afterAll(async () => {
  await db?.close();
});

describe('read models’ batches of one turn', () => {
  it('commit in one transaction, each checkpoint moved', async () => {
    await seed('a');
    await seed('b');
    await seed('c');
    const states = await Promise.all([commits.commit(batch('b', 'b')), commits.commit(batch('a', 'a')), commits.commit(batch('c', 'c'))]);
    expect(states.map((state) => state?.name)).toEqual(['b', 'a', 'c']); // each caller gets its own row
    expect(states.map((state) => state?.checkpoint)).toEqual([TO, TO, TO]);
    const [a, b, c] = [await writers('a'), await writers('b'), await writers('c')];
    expect(a).toHaveLength(1);
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    expect(commits.stats).toEqual({ shared: 1, retriedAlone: 0 });
    for (const name of ['a', 'b', 'c']) expect(await position(name)).toBe(7);
  });

  it('a batch alone goes in a transaction of its own', async () => {
    await seed('a');
    expect((await commits.commit(batch('a', 'a')))?.checkpoint).toEqual(TO);
    await seed('b');
    expect((await commits.commit(batch('b', 'b')))?.checkpoint).toEqual(TO);
    expect(await writers('a')).not.toEqual(await writers('b'));
    expect(commits.stats).toEqual({ shared: 0, retriedAlone: 0 });
  });

  it("a handler's error fails only its own batch: the others commit, nothing of it does", async () => {
    await seed('a');
    await seed('b');
    await seed('c');
    let failingCalls = 0;
    const failing = batch('b', 'b', '3', async () => {
      failingCalls++;
      throw new Error('b refuses its batch');
    });
    const [a, b, c] = await settled([commits.commit(batch('a', 'a')), commits.commit(failing), commits.commit(batch('c', 'c'))]);
    expect(a).toMatchObject({ status: 'fulfilled', value: { name: 'a', checkpoint: TO } });
    expect(b).toMatchObject({ status: 'rejected', reason: { message: 'b refuses its batch' } });
    expect(c).toMatchObject({ status: 'fulfilled', value: { name: 'c', checkpoint: TO } });
    expect(await writers('a')).toHaveLength(1); // once, though its handler ran twice (shared, then alone)
    expect(await writers('b')).toEqual([]);
    expect(failingCalls).toBe(1); // its failure is its own: not tried again at once (PROJECTION_MAX_ATTEMPTS counts calls)
    expect(await writers('c')).toHaveLength(1);
    expect(await position('b')).toBe(0);
    expect(commits.stats).toEqual({ shared: 0, retriedAlone: 1 });
  });

  it('a refused move (the lease is not held with that token) refuses only its own batch', async () => {
    await seed('a');
    await seed('b', '4'); // taken over: the holder's token 3 is stale
    const [a, b] = await Promise.all([commits.commit(batch('a', 'a')), commits.commit(batch('b', 'b'))]);
    expect(a?.checkpoint).toEqual(TO);
    expect(b).toBeNull();
    expect(await writers('a')).toHaveLength(1);
    expect(await writers('b')).toEqual([]);
    expect(await position('b')).toBe(0);
    expect(commits.stats).toEqual({ shared: 0, retriedAlone: 1 });
  });

  it('a statement of one batch that breaks a constraint leaves the others committed', async () => {
    await seed('a');
    await seed('b');
    await admin.query(`INSERT INTO shared_writes (tag, n) VALUES ('taken', 1)`);
    const clash = batch('b', 'b', '3', async (manager) => {
      await manager.query(`INSERT INTO shared_writes (tag, n) VALUES ('b', 1)`);
    });
    const [a, b] = await settled([commits.commit(batch('a', 'a')), commits.commit(clash)]);
    expect(a).toMatchObject({ status: 'fulfilled', value: { checkpoint: TO } });
    expect(b).toMatchObject({ status: 'rejected', reason: { driverError: { code: '23505' } } });
    expect(await writers('a')).toHaveLength(1);
    expect(await writers('b')).toEqual([]);
    expect(await position('b')).toBe(0);
  });

  it(`a batch held by a lock holds the others back for SHARED_LOCK_TIMEOUT_MS at most, then waits alone`, async () => {
    await seed('a');
    await seed('b');
    const locker = new pg.Client({ connectionString: db.database.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE held_writes IN SHARE MODE');
      let heldCalls = 0;
      const held = commits.commit(
        batch('a', 'a', '3', async (manager) => {
          heldCalls++;
          await manager.query(`INSERT INTO held_writes VALUES ('a')`);
        }),
      );
      let heldAnswered = false;
      void held.then(() => (heldAnswered = true));
      const started = performance.now();
      expect((await commits.commit(batch('b', 'b')))?.checkpoint).toEqual(TO);
      const waited = performance.now() - started;
      expect(waited).toBeGreaterThanOrEqual(SHARED_LOCK_TIMEOUT_MS * 0.9);
      expect(heldAnswered).toBe(false); // still waiting for the lock, alone
      expect(await writers('b')).toHaveLength(1);
      await locker.query('COMMIT');
      expect((await held)?.checkpoint).toEqual(TO);
      expect(heldCalls).toBe(2); // timed out in the shared transaction (not counted as its failure), then alone
      expect(await writers('a')).toHaveLength(1);
      expect(commits.stats).toEqual({ shared: 0, retriedAlone: 1 });
    } finally {
      await locker.end();
    }
  });

  it('a batch of a read model that commits alone never shares its transaction', async () => {
    await seed('a');
    await seed('b');
    const [a, b] = await Promise.all([commits.commit({ ...batch('a', 'a'), alone: true }), commits.commit(batch('b', 'b'))]);
    expect([a?.checkpoint, b?.checkpoint]).toEqual([TO, TO]);
    expect(await writers('a')).not.toEqual(await writers('b'));
    expect(commits.stats).toEqual({ shared: 0, retriedAlone: 0 });
  });

  it('two batches of one row never share a transaction: the second is fenced by where the first left it', async () => {
    await seed('a');
    const [first, second] = await Promise.all([commits.commit(batch('a', 'first')), commits.commit(batch('a', 'second'))]);
    expect(first?.checkpoint).toEqual(TO);
    expect(second).toBeNull(); // it started from FROM too, but the row has moved on
    expect(await writers('first')).toHaveLength(1);
    expect(await writers('second')).toEqual([]);
  });

  it('a connection lost during the shared commit: every caller gets the error, as alone, and nothing is applied again', async () => {
    let cut = false;
    // The first message with the moves and the COMMIT reaches the server, which commits it; its answer is lost.
    const proxy = await startCuttingProxy(db.database.url, (text) => !cut && (cut = text.includes('ledger_advance_checkpoint')));
    const throughProxy = await new DataSource(dataSourceOptions(proxy.url, 2)).initialize();
    const lossy = new ReadModelBatchCommits(() => throughProxy);
    try {
      await seed('a');
      await seed('b');
      const outcomes = await settled([lossy.commit(batch('a', 'a')), lossy.commit(batch('b', 'b'))]);
      expect(cut).toBe(true);
      // Ambiguous: every caller is told what it would be told alone, the connection's error; none is
      // applied again at once (its rows may be committed: the runner looks at its row first).
      expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected']);
      expect(lossy.stats).toEqual({ shared: 0, retriedAlone: 0 });
      // The server got the whole message: it commits both batches, once, with their checkpoints.
      for (let waited = 0; (await writers('b')).length === 0 && waited < 5_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
      for (const name of ['a', 'b']) {
        expect(await writers(name)).toHaveLength(1);
        expect(await position(name)).toBe(7);
      }
    } finally {
      await throughProxy.destroy().catch(() => undefined);
      await proxy.close();
    }
  });
});
