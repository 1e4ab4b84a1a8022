import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { EventBus } from '@nestjs/cqrs';
import { NO_STREAM, UnitOfWorkConflict, UnitOfWorkEnded, runFenced } from '../src/event-sourcing/index.js';
import { type EngineModule, Ticked, eventually, rows, startEngineModule } from './support/projection-fixtures.js';
import { startLateReadyProxy } from './support/late-ready-proxy.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

// Review of issue 15 (EventStore.transaction(work, { flat: true })): appends at an exact version
// join the transaction without a savepoint, so a failed one aborts the whole transaction. These
// pin what must then hold, at the store itself (the transfer process manager is its only user):
// a lost race restarts the whole unit of work and commits it once; work that swallows a failed
// append is never reported committed; and the fence checked once at COMMIT still refuses a holder
// that lost its lease, and a nested stale fence.
describe('a flat unit of work (EventStore.transaction, flat: true)', () => {
  const NAME = 'review15-flat';
  let database: TestDatabase;
  let t: EngineModule;
  /**
   * Ends a transaction a test holds open (see the version race): released after the test even when it
   * fails, as an open transaction would keep `t` from closing and hold every commit-safe reader of
   * the server (other test files') back.
   */
  let release: (() => void) | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await startEngineModule({ url: database.url, events: [Ticked], projections: [], engine: { enabled: false } });
    await t.checkpoints.ensure([NAME]);
  });
  afterEach(() => {
    release?.();
    release = undefined;
  });
  afterAll(async () => {
    await t?.close();
    await database?.drop();
  });

  const version = async (streamId: string) => (await t.store.readStream(streamId)).length;
  const lockWaiters = async () =>
    (
      await rows<{ n: number }>(
        t.dataSource,
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
      )
    )[0].n;

  it('loses a version race after an earlier append (unique violation: transaction aborted), restarts whole and commits once', async () => {
    await t.store.append('flat-hot', [new Ticked({ n: 0 })], { expectedVersion: NO_STREAM });
    // Another writer holds flat-hot's next version, uncommitted, until released.
    const released = new Promise<void>((resolve) => (release = resolve));
    let held!: () => void;
    const holding = new Promise<void>((resolve) => (held = resolve));
    const holder = t.store.transaction(async () => {
      await t.store.append('flat-hot', [new Ticked({ n: 1 })], { expectedVersion: 1 });
      held();
      await released;
    });
    await holding;

    let attempts = 0;
    const unit = t.store.transaction(
      async () => {
        attempts++;
        const other = await version('flat-other');
        await t.store.append('flat-other', [new Ticked({ n: 10 + attempts })], { expectedVersion: other === 0 ? NO_STREAM : other });
        // Reads 1 on the first attempt (the holder has not committed): the append waits on its row.
        await t.store.append('flat-hot', [new Ticked({ n: 20 + attempts })], { expectedVersion: await version('flat-hot') });
      },
      { flat: true },
    );
    await eventually('the unit of work waiting on the held version', async () => ((await lockWaiters()) > 0 ? true : undefined));
    release!();
    await holder;
    await unit;

    expect(attempts).toBe(2);
    const hot = await t.store.readStream('flat-hot');
    expect(hot.map((event) => (event.data as Ticked).n)).toEqual([0, 1, 22]);
    const other = await t.store.readStream('flat-other');
    expect(other.map((event) => (event.data as Ticked).n)).toEqual([12]); // the aborted attempt left nothing
    expect(other[0].transactionId).toBe(hot[2].transactionId); // one transaction
  });

  it('appending after a younger transaction wrote the stream (LE001, transaction aborted) restarts whole on a younger one', async () => {
    await t.store.append('flat-younger', [new Ticked({ n: 0 })], { expectedVersion: NO_STREAM });
    let wrote!: () => void;
    const written = new Promise<void>((resolve) => (wrote = resolve));
    let proceed!: () => void;
    const proceeding = new Promise<void>((resolve) => (proceed = resolve));
    let attempts = 0;
    const unit = t.store.transaction(
      async () => {
        attempts++;
        const first = await version('flat-first');
        // The unit of work's first write: its transaction id is taken here.
        await t.store.append('flat-first', [new Ticked({ n: attempts })], { expectedVersion: first === 0 ? NO_STREAM : first });
        if (attempts === 1) {
          wrote();
          await proceeding;
        }
        // flat-younger's head was written meanwhile by a younger transaction: appending after it
        // from this older one would list the stream out of version order (the trigger's LE001).
        await t.store.append('flat-younger', [new Ticked({ n: 10 + attempts })], { expectedVersion: await version('flat-younger') });
      },
      { flat: true },
    );
    await written;
    await t.store.append('flat-younger', [new Ticked({ n: 1 })], { expectedVersion: 1 }); // a younger transaction, committed
    proceed();
    await unit;

    expect(attempts).toBe(2);
    const younger = await t.store.readStream('flat-younger');
    expect(younger.map((event) => (event.data as Ticked).n)).toEqual([0, 1, 12]);
    const first = await t.store.readStream('flat-first');
    expect(first.map((event) => (event.data as Ticked).n)).toEqual([2]);
    expect(first[0].transactionId).toBe(younger[2].transactionId);
    // Transaction ids never decrease along the stream's versions.
    expect(BigInt(younger[2].transactionId) > BigInt(younger[1].transactionId)).toBe(true);
  });

  it('goes on after an append refused without a failed statement, but is never reported committed once a swallowed refusal aborted it', async () => {
    await t.store.append('flat-taken', [new Ticked({ n: 0 })], { expectedVersion: NO_STREAM });
    await expect(
      t.store.transaction(
        async () => {
          await t.store.append('flat-swallow', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
          // NO_STREAM on an existing stream: refused without a failed statement (no abort), so the
          // unit of work may go on and commit what it did.
          await t.store.append('flat-taken', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM }).catch(() => undefined);
        },
        { flat: true },
      ),
    ).resolves.toBeUndefined();
    expect(await version('flat-swallow')).toBe(1);

    // A nested append under a stale fence: its check (ledger_fence refusing the token) is a failed
    // statement, which without a savepoint aborts the whole transaction. Work that swallows that
    // refusal must not see its unit of work reported committed (COMMIT of an aborted transaction
    // silently rolls back), nor its events published as if they were.
    const published: unknown[] = [];
    const subscription = t.moduleRef.get(EventBus).subscribe((event) => published.push(event));
    try {
      await expect(
        t.store.transaction(
          async () => {
            await t.store.append('flat-aborted', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
            await runFenced({ name: NAME, owner: 'flat-stale', token: '1' }, () =>
              t.store.append('flat-aborted-fenced', [new Ticked({ n: 2 })], { expectedVersion: NO_STREAM }),
            ).catch(() => undefined);
          },
          { flat: true },
        ),
      ).rejects.toThrow(/lease/i);
    } finally {
      subscription.unsubscribe();
    }
    expect(await version('flat-aborted')).toBe(0);
    expect(published).toEqual([]);
  });

  it.each([
    ['flat', 'at once', { flat: true }],
    ['with savepoints', 'at once', {}],
    // The driver rejects a failed query on its ErrorResponse; the ReadyForQuery that marks the
    // transaction aborted may come in a later TCP chunk (seen once in CI, under load). The proxy
    // makes that happen every time.
    ['flat', 'late', { flat: true }],
    ['with savepoints', 'late', {}],
  ] as const)(
    'never reports committed, nor publishes, a unit of work (%s) whose work swallowed a failed statement of its own (ReadyForQuery %s)',
    async (label, ready, options) => {
      const proxy = ready === 'late' ? await startLateReadyProxy(database.url, 30) : undefined;
      const module = proxy
        ? await startEngineModule({ url: proxy.url, events: [Ticked], projections: [], engine: { enabled: false }, poolSize: 2 })
        : t;
      const streamId = `swallowed-${ready}-${label.replace(/\W/g, '-')}`;
      const published: unknown[] = [];
      const subscription = module.moduleRef.get(EventBus).subscribe((event) => published.push(event));
      try {
        await expect(
          module.store.transaction(async (tx) => {
            await module.store.append(streamId, [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
            // A statement of the work's own that PostgreSQL refuses, its error swallowed: the
            // transaction is aborted, and its COMMIT would silently roll back.
            await tx.manager.query('SELECT 1/0').catch(() => undefined);
          }, options),
        ).rejects.toThrow(/aborted/i);
      } finally {
        subscription.unsubscribe();
        if (proxy) {
          await module.close();
          await proxy.close();
        }
      }
      expect(await version(streamId)).toBe(0);
      expect(published).toEqual([]);
    },
  );

  it.each([
    ['flat', 'ROLLBACK', { flat: true }],
    ['with savepoints', 'ROLLBACK', {}],
    ['flat', 'COMMIT', { flat: true }],
    ['with savepoints', 'COMMIT', {}],
  ] as const)(
    'never reports committed, nor publishes, a unit of work (%s) whose work ended its transaction itself with %s',
    async (label, statement, options) => {
      const streamId = `ended-by-work-${statement}-${label.replace(/\W/g, '-')}`;
      const published: unknown[] = [];
      const subscription = t.moduleRef.get(EventBus).subscribe((event) => published.push(event));
      let runs = 0;
      try {
        await expect(
          t.store.transaction(async (tx) => {
            runs++;
            await t.store.append(streamId, [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
            // No statement failed: the transaction is simply over, and a COMMIT after it commits nothing.
            await tx.manager.query(statement);
          }, options),
        ).rejects.toBeInstanceOf(UnitOfWorkEnded);
      } finally {
        subscription.unsubscribe();
      }
      expect(runs).toBe(1);
      // Its own COMMIT stored the append (unfenced, unannounced: a bug of the work's, reported as such).
      expect(await version(streamId)).toBe(statement === 'COMMIT' ? 1 : 0);
      expect(published).toEqual([]);
      // Nothing is left broken: the next unit of work commits.
      await t.store.transaction(async () => {
        await t.store.append(`${streamId}-next`, [new Ticked({ n: 2 })], { expectedVersion: NO_STREAM });
      }, options);
      expect(await version(`${streamId}-next`)).toBe(1);
    },
  );

  it('does not run again, after a conflict, work that ended the transaction itself with COMMIT (what it stored would be stored twice)', async () => {
    const streamId = 'ended-then-conflict';
    let runs = 0;
    await expect(
      t.store.transaction(
        async (tx) => {
          runs++;
          await t.store.append(streamId, [new Ticked({ n: runs })], { expectedVersion: runs === 1 ? NO_STREAM : runs - 1 });
          await tx.manager.query('COMMIT');
          throw new UnitOfWorkConflict(streamId, 'a conflict after the work ended its transaction');
        },
        { flat: true },
      ),
    ).rejects.toBeInstanceOf(UnitOfWorkEnded);
    expect(runs).toBe(1);
    expect(await version(streamId)).toBe(1);
  });

  it('under a fence whose lease is taken over during the work commits nothing (the fence is checked once, at COMMIT)', async () => {
    const token = (await t.checkpoints.acquireLease(NAME, 'flat-owner', 60_000))!;
    expect(token).not.toBeNull();
    await expect(
      runFenced({ name: NAME, owner: 'flat-owner', token }, () =>
        t.store.transaction(
          async () => {
            await t.store.append('flat-fenced-a', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
            await t.dataSource.query(
              `UPDATE projection_checkpoints SET lease_expires_at = clock_timestamp() - interval '1 second' WHERE name = $1`,
              [NAME],
            );
            expect(await t.checkpoints.acquireLease(NAME, 'flat-other-owner', 60_000)).not.toBeNull();
            await t.store.append('flat-fenced-b', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
          },
          { flat: true },
        ),
      ),
    ).rejects.toThrow(/lease/i);
    expect(await version('flat-fenced-a')).toBe(0);
    expect(await version('flat-fenced-b')).toBe(0);
  });

  it('opened under a live fence refuses an append nested under another, stale fence', async () => {
    await t.dataSource.query(
      `UPDATE projection_checkpoints SET lease_expires_at = clock_timestamp() - interval '1 second' WHERE name = $1`,
      [NAME],
    );
    const live = (await t.checkpoints.acquireLease(NAME, 'flat-live', 60_000))!;
    expect(live).not.toBeNull();
    await expect(
      runFenced({ name: NAME, owner: 'flat-live', token: live }, () =>
        t.store.transaction(
          () =>
            runFenced({ name: NAME, owner: 'flat-stale', token: '1' }, () =>
              t.store.append('flat-nested-stale', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM }),
            ),
          { flat: true },
        ),
      ),
    ).rejects.toThrow(/lease/i);
    expect(await version('flat-nested-stale')).toBe(0);
  });
});
