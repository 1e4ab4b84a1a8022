// The fenced COMMIT (fenced-transaction.ts) at its edges, from its hostile review: ReadyForQuery
// arriving late (its own TCP chunk); the lease row's lock under a nested fence (still held across
// round trips until the outer COMMIT: documented, not changed); and a unit of work reported failed
// that committed nonetheless (the connection lost while its check waited for the row: ambiguous, as
// any lost COMMIT; documented, harmless for idempotent steps).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { LeaseLostError, NO_STREAM, runFenced } from '../src/event-sourcing/index.js';
import { type EngineModule, Ticked, rows, startEngineModule, withClient } from './support/projection-fixtures.js';
import { startLateReadyProxy } from './support/late-ready-proxy.js';
import { type DatabaseProxy, startDatabaseProxy } from './support/tcp-proxy.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const NAME = 'review-fenced-edges';

describe('the fenced COMMIT at its edges', () => {
  let database: TestDatabase;
  let t: EngineModule;
  let token: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await startEngineModule({ url: database.url, events: [Ticked], projections: [], engine: { enabled: false }, poolSize: 2 });
    await t.checkpoints.ensure([NAME, `${NAME}-inner`]);
    token = (await t.checkpoints.acquireLease(NAME, 'holder', 600_000))!;
  });
  afterAll(async () => {
    await t?.close();
    await database?.drop();
  });

  const stream = async (id: string) => (await t.store.readStream(id)).length;

  it.each([
    ['with savepoints', {}],
    ['flat', { flat: true }],
  ] as const)(
    'ReadyForQuery late (%s): refused, failed-COMMIT and passing steps; the one pooled connection stays clean',
    async (_label, options) => {
      const proxy = await startLateReadyProxy(database.url, 40);
      const m = await startEngineModule({ url: proxy.url, events: [Ticked], projections: [], engine: { enabled: false }, poolSize: 1 });
      const id = (s: string) => `late-${'flat' in options ? 'flat' : 'sp'}-${s}`;
      try {
        await expect(
          runFenced({ name: NAME, owner: 'holder', token: String(BigInt(token) + 1n) }, () =>
            m.store.transaction(() => m.store.append(id('refused'), [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM }), options),
          ),
        ).rejects.toBeInstanceOf(LeaseLostError);
        await expect(
          runFenced({ name: NAME, owner: 'holder', token }, () =>
            m.store.transaction(async (tx) => {
              await tx.manager.query(`CREATE TEMP TABLE d (id int UNIQUE DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP`);
              await tx.manager.query(`INSERT INTO d VALUES (1), (1)`);
              await m.store.append(id('commit-failed'), [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
            }, options),
          ),
        ).rejects.toMatchObject({ driverError: { code: '23505' } });
        await runFenced({ name: NAME, owner: 'holder', token }, () =>
          m.store.transaction(() => m.store.append(id('ok'), [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM }), options),
        );
        // The same (only) connection, at once: outside any transaction.
        const [row] = await rows<{ fresh: boolean; xid: string | null }>(
          m.dataSource,
          'SELECT now() = statement_timestamp() AS fresh, pg_current_xact_id_if_assigned()::text AS xid',
        );
        expect(row).toEqual({ fresh: true, xid: null });
        await m.store.transaction(() => m.store.append(id('unfenced'), [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM }));
      } finally {
        await m.close();
        await proxy.close();
      }
      expect([
        await stream(id('refused')),
        await stream(id('commit-failed')),
        await stream(id('ok')),
        await stream(id('unfenced')),
      ]).toEqual([0, 0, 1, 1]);
    },
  );

  it('a nested step under another fence keeps that lease row locked until the outer COMMIT, across round trips', async () => {
    const inner = (await t.checkpoints.acquireLease(`${NAME}-inner`, 'inner-holder', 600_000))!;
    let resume!: () => void;
    const paused = new Promise<void>((resolve) => (resume = resolve));
    let checked!: () => void;
    const innerChecked = new Promise<void>((resolve) => (checked = resolve));
    const outer = runFenced({ name: NAME, owner: 'holder', token }, () =>
      t.store.transaction(async () => {
        await runFenced({ name: `${NAME}-inner`, owner: 'inner-holder', token: inner }, () =>
          t.store.transaction(() => t.store.append('nested-held', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM })),
        );
        checked();
        await paused; // the process is "paused" here, before the outer COMMIT
      }),
    );
    await innerChecked;
    const takeover = await withClient(database.url, async (client) => {
      await client.query('BEGIN');
      await client.query(`SET LOCAL lock_timeout = '500ms'`);
      try {
        await client.query(`UPDATE projection_checkpoints SET lease_token = lease_token + 1 WHERE name = $1`, [`${NAME}-inner`]);
        return 'took over';
      } catch (error) {
        return (error as { code?: string }).code;
      } finally {
        await client.query('ROLLBACK');
      }
    });
    resume();
    await outer;
    expect(takeover).toBe('55P03'); // lock_timeout: the inner lease row is still locked FOR SHARE
  });

  it('a connection lost while the fence check waits reports the step failed, and it may commit (as any lost COMMIT)', async () => {
    // A proxy that, once the client has sent the fence check (now with its COMMIT), cuts the client off (the
    // server keeps its side, runs the message, and commits). When the check went alone, a connection
    // lost then could only roll back.
    const proxy = await cuttingProxy(database.url, (text) => text.includes('ledger_fence'));
    const m = await startEngineModule({ url: proxy.url, events: [Ticked], projections: [], engine: { enabled: false }, poolSize: 2 });
    try {
      await withClient(database.url, async (locker) => {
        // The fence waits for the row (a takeover attempt, a renewal, the checkpoint's advance).
        await locker.query('BEGIN');
        await locker.query('SELECT 1 FROM projection_checkpoints WHERE name = $1 FOR UPDATE', [NAME]);
        const step = runFenced({ name: NAME, owner: 'holder', token }, () =>
          m.store.transaction(() => m.store.append('cut-1', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM })),
        );
        const outcome = await step.then(
          () => 'committed',
          (error: unknown) => `failed: ${(error as Error).message}`,
        );
        expect(outcome).toMatch(/^failed: /);
        await locker.query('ROLLBACK'); // nobody took over: the fence passes, the COMMIT runs
      });
      for (let i = 0; i < 100 && (await stream('cut-1')) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await stream('cut-1')).toBe(1); // reported failed, but committed
    } finally {
      await m.close().catch(() => undefined);
      await proxy.close();
    }
  });
});

/** A TCP proxy that destroys the client side (only) right after forwarding a Query message matching `cut`. */
function cuttingProxy(databaseUrl: string, cut: (text: string) => boolean): Promise<DatabaseProxy> {
  return startDatabaseProxy(databaseUrl, (client, upstream) => {
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    upstream.on('close', () => client.destroy());
    upstream.pipe(client);
    let armed = false;
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      const text = chunk.toString('utf8');
      if (!armed && cut(text)) {
        armed = true;
        upstream.unpipe(client);
        client.destroy();
        setTimeout(() => upstream.end(), 3_000).unref(); // the server notices later, after it ran the message
      }
    });
    client.on('close', () => {
      if (!armed) upstream.destroy();
    });
  });
}
