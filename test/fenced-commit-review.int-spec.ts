// Hostile review of the fenced COMMIT (inTransaction: a fenced unit of work sends 'SELECT ledger_fence(...); COMMIT' as
// one simple-protocol message). What must hold: COMMIT runs only if the check passed; any failure
// (refused check, other check error, failed COMMIT, work error, dead connection) commits nothing,
// publishes nothing, and returns no pooled connection inside a transaction; names and owners are
// quoted whatever they contain; the least-privileged command role may still commit its steps.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EventBus } from '@nestjs/cqrs';
import { LeaseLostError, NO_STREAM, UnitOfWorkAborted, UnitOfWorkEnded, runFenced } from '../src/event-sourcing/index.js';
import { type EngineModule, Ticked, rows, startEngineModule, withClient } from './support/projection-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const NAME = 'review-fenced';

describe('the fence check and COMMIT in one message, under attack', () => {
  let database: TestDatabase;
  let t: EngineModule;
  let token: string;
  const published: unknown[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    // A pool of 2: every later query reuses a connection a fenced unit of work had.
    t = await startEngineModule({ url: database.url, events: [Ticked], projections: [], engine: { enabled: false }, poolSize: 2 });
    await t.checkpoints.ensure([NAME]);
    token = (await t.checkpoints.acquireLease(NAME, 'holder', 600_000))!;
    t.moduleRef.get(EventBus).subscribe((event) => published.push(event));
  });
  afterAll(async () => {
    await t?.close();
    await database?.drop();
  });

  const holding = () => ({ name: NAME, owner: 'holder', token });
  const stream = async (id: string) => (await t.store.readStream(id)).length;

  /** No connection of the database is left in (or idle in) a transaction, and both pooled ones answer outside one. */
  async function poolIsClean(): Promise<void> {
    const answers = await Promise.all(
      Array.from({ length: 6 }, () =>
        rows<{ fresh: boolean; xid: string | null }>(
          t.dataSource,
          `SELECT now() = statement_timestamp() AS fresh, pg_current_xact_id_if_assigned()::text AS xid, pg_sleep(0.05)::text`,
        ),
      ),
    );
    expect(answers.map(([row]) => [row.fresh, row.xid])).toEqual(Array.from({ length: 6 }, () => [true, null]));
    const [{ n }] = await withClient(database.url, (client) =>
      rows<{ n: number }>(
        client,
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`,
      ),
    );
    expect(n).toBe(0);
  }

  it('PostgreSQL skips the COMMIT after a refused check in the same message: the transaction is left aborted', async () => {
    await withClient(database.url, async (client) => {
      await client.query('BEGIN');
      await client.query(`INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
        VALUES ('raw-1', 1, 'Ticked', 1, gen_random_uuid(), '{}', '{}')`);
      await expect(client.query(`SELECT ledger_fence('${NAME}', 'holder', ${BigInt(token) - 1n}::bigint); COMMIT`)).rejects.toMatchObject({
        code: 'LF001',
      });
      const [{ one }] = (
        await client.query('SELECT 1 AS one').catch((error: unknown) => ({ rows: [{ one: (error as { code: string }).code }] }))
      ).rows;
      expect(one).toBe('25P02'); // still in the (aborted) transaction: the COMMIT did not run
      await client.query('ROLLBACK');
    });
    expect(await stream('raw-1')).toBe(0);
  });

  it('a COMMIT that fails (deferred constraint) reports its error, stores, publishes and snapshots nothing', async () => {
    published.length = 0;
    let afterCommitRan = false;
    const attempt = runFenced(holding(), () =>
      t.store.transaction(async (tx) => {
        await tx.manager.query(`CREATE TEMP TABLE review_deferred (id int UNIQUE DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP`);
        await tx.manager.query(`INSERT INTO review_deferred VALUES (1), (1)`);
        await t.store.append('deferred-1', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
        tx.afterCommit.push(async () => {
          afterCommitRan = true;
        });
      }),
    );
    await expect(attempt).rejects.toMatchObject({ driverError: { code: '23505' } });
    expect(await stream('deferred-1')).toBe(0);
    expect(published).toEqual([]);
    expect(afterCommitRan).toBe(false);
    await poolIsClean();
  });

  it('a check cancelled by statement_timeout while it waits for the row (not LF001) commits nothing', async () => {
    await withClient(database.url, async (locker) => {
      await locker.query('BEGIN');
      await locker.query('SELECT 1 FROM projection_checkpoints WHERE name = $1 FOR UPDATE', [NAME]);
      const attempt = runFenced(holding(), () =>
        t.store.transaction(async (tx) => {
          await tx.manager.query(`SET LOCAL statement_timeout = '300ms'`);
          await t.store.append('timeout-1', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
        }),
      );
      await expect(attempt).rejects.toMatchObject({ driverError: { code: '57014' } });
      await locker.query('ROLLBACK');
    });
    expect(await stream('timeout-1')).toBe(0);
    await poolIsClean();
  });

  it('a backend terminated while its check waits commits nothing; the pool recovers', async () => {
    await withClient(database.url, async (locker) => {
      await locker.query('BEGIN');
      await locker.query('SELECT 1 FROM projection_checkpoints WHERE name = $1 FOR UPDATE', [NAME]);
      const attempt = runFenced(holding(), () =>
        t.store.transaction(() => t.store.append('killed-1', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM })),
      );
      const settled = attempt.then(
        () => 'resolved',
        (error: unknown) => error,
      );
      // Only this database's backend: pg_stat_activity lists the whole server, and another test file's
      // fenced step waiting on its own lock must not be killed (that failed half a CI run).
      let killed = 0;
      try {
        for (let i = 0; i < 250 && killed === 0; i++) {
          // Asked outside the locker's transaction: inside one, pg_stat_activity is read once and kept
          // (a snapshot taken before the step reached its check would never show it waiting).
          const found = await rows<{ ok: boolean }>(
            t.dataSource,
            `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'SELECT ledger_fence%' AND wait_event_type = 'Lock'`,
          );
          killed = found.length;
          if (killed === 0) await new Promise((resolve) => setTimeout(resolve, 20));
        }
        expect(killed).toBe(1);
        expect(await settled).not.toBe('resolved');
      } finally {
        // Ends the lock (and its transaction id, which holds every commit-safe reader of the server
        // back) even when the step was not found: the step then goes on, and nothing waits forever.
        await locker.query('ROLLBACK');
        await settled;
      }
    });
    expect(await stream('killed-1')).toBe(0);
    await poolIsClean();
  });

  it('work that throws, swallows a failed statement, or ends the transaction itself leaves no connection in a transaction', async () => {
    const fenced = <T>(work: () => Promise<T>) => runFenced(holding(), work);
    await expect(
      fenced(() =>
        t.store.transaction(async () => {
          await t.store.append('throws-1', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
          throw new Error('boom');
        }),
      ),
    ).rejects.toThrow('boom');
    await expect(
      fenced(() =>
        t.store.transaction(async (tx) => {
          await t.store.append('aborted-1', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
          await tx.manager.query('SELECT 1/0').catch(() => undefined);
        }),
      ),
    ).rejects.toBeInstanceOf(UnitOfWorkAborted);
    await expect(
      fenced(() =>
        t.store.transaction(async (tx) => {
          await t.store.append('ended-1', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
          await tx.manager.query('ROLLBACK');
        }),
      ),
    ).rejects.toBeInstanceOf(UnitOfWorkEnded);
    expect([await stream('throws-1'), await stream('aborted-1'), await stream('ended-1')]).toEqual([0, 0, 0]);
    await poolIsClean();
  });

  it('a nested unit of work under another, stale fence is refused alone; the outer commits under its own', async () => {
    await t.checkpoints.ensure(['review-other']);
    const other = (await t.checkpoints.acquireLease('review-other', 'other', 600_000))!;
    await runFenced(holding(), () =>
      t.store.transaction(async () => {
        await t.store.append('outer-1', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
        await expect(
          runFenced({ name: 'review-other', owner: 'other', token: String(BigInt(other) + 1n) }, () =>
            t.store.transaction(() => t.store.append('inner-1', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM })),
          ),
        ).rejects.toBeInstanceOf(LeaseLostError);
      }),
    );
    expect([await stream('outer-1'), await stream('inner-1')]).toEqual([1, 0]);
    await poolIsClean();
  });

  const hostile = [
    `a'b`,
    `back\\slash`,
    `trailing\\`,
    `\\'); COMMIT; SELECT ('`,
    `'); COMMIT; --`,
    `$$; COMMIT; $$`,
    `ünï©ødé 🎉 名前`,
    `E'x'`,
  ];
  for (const scs of ['on', 'off']) {
    it(`quotes hostile names and owners (standard_conforming_strings ${scs}): the holder commits, a stale token is refused`, async () => {
      for (const [i, text] of hostile.entries()) {
        const name = `${NAME}:${text}:${scs}`;
        const owner = `owner ${text}`;
        await t.checkpoints.ensure([name]);
        const live = (await t.checkpoints.acquireLease(name, owner, 600_000))!;
        const step = (tokenOf: string, streamId: string) =>
          runFenced({ name, owner, token: tokenOf }, () =>
            t.store.transaction(async (tx) => {
              await tx.manager.query(`SET LOCAL standard_conforming_strings = ${scs}`);
              await t.store.append(streamId, [new Ticked({ n: i })], { expectedVersion: NO_STREAM });
            }),
          );
        await expect(step(String(BigInt(live) + 1n), `quoted-stale-${scs}-${i}`)).rejects.toBeInstanceOf(LeaseLostError);
        await step(live, `quoted-${scs}-${i}`);
        expect([await stream(`quoted-stale-${scs}-${i}`), await stream(`quoted-${scs}-${i}`)]).toEqual([0, 1]);
      }
      await poolIsClean();
    });
  }

  it('the least-privileged command role commits its fenced step (EXECUTE on ledger_fence only)', async () => {
    await runFenced(holding(), () =>
      t.store.transaction(async (tx) => {
        await tx.manager.query('SET LOCAL ROLE ledger_command');
        await t.store.append('as-command-1', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
      }),
    );
    expect(await stream('as-command-1')).toBe(1);
    await poolIsClean();
  });

  it('a fenced step under a stale token, under SET LOCAL ROLE ledger_command, is refused and rolled back', async () => {
    await expect(
      runFenced({ ...holding(), token: String(BigInt(token) + 1n) }, () =>
        t.store.transaction(async (tx) => {
          await tx.manager.query('SET LOCAL ROLE ledger_command');
          await t.store.append('as-command-2', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
        }),
      ),
    ).rejects.toBeInstanceOf(LeaseLostError);
    expect(await stream('as-command-2')).toBe(0);
    const [{ role }] = await rows<{ role: string }>(t.dataSource, 'SELECT current_user AS role');
    expect(role).not.toBe('ledger_command');
  });

  it('an owner with a NUL character is refused, not injected (old path: 22021; new: protocol error)', async () => {
    const attempt = runFenced({ ...holding(), owner: "holder\u0000'); COMMIT; --" }, () =>
      t.store.transaction(() => t.store.append('nul-1', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM })),
    );
    const error = await attempt.then(
      () => undefined,
      (e: unknown) => (e as { driverError?: unknown }).driverError ?? e,
    );
    expect(error).toBeDefined();
    expect(await stream('nul-1')).toBe(0);
    await poolIsClean();
  });

  it('the raw pg client sees the COMMIT in the same message even when its text arrives in one Query (status I after)', async () => {
    await withClient(database.url, async (client) => {
      await client.query('BEGIN');
      await client.query(`SELECT ledger_fence('${NAME}', 'holder', ${BigInt(token)}::bigint); COMMIT`);
      expect((client as unknown as { getTransactionStatus(): string }).getTransactionStatus()).toBe('I');
    });
  });
});
