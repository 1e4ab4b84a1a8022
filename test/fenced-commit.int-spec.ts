// A process manager's step commits only while its holder still holds the lease: ledger_fence locks
// the lease row FOR SHARE and checks the holding, then the transaction commits. If the check and the
// COMMIT are two round trips, a holder paused between them (a GC pause, SIGSTOP, a saturated event
// loop) keeps that lock, and the next holder's takeover (an UPDATE of the row) waits for it — up to
// the idle-in-transaction timeout — with every segment of the projection stalled meanwhile. Sent in
// one message, the lock lasts only as long as the server takes to run the COMMIT.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { LeaseLostError, NO_STREAM, runFenced } from '../src/event-sourcing/index.js';
import { type EngineModule, Ticked, checkpointRow, rows, startEngineModule } from './support/projection-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const NAME = 'fenced-commit';
/** How long the holder is "paused" after its fence check returns: far longer than the takeover waits. */
const PAUSE_MS = 3_000;
/** How long the takeover may wait for the row's lock before it gives up (lock_timeout). */
const TAKEOVER_LOCK_TIMEOUT_MS = 1_000;

type Query = (this: pg.Client, ...args: unknown[]) => unknown;

describe('a fenced unit of work checks its lease and commits in one message', () => {
  let database: TestDatabase;
  let t: EngineModule;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- kept to be called with its client as `this`
  const originalQuery = pg.Client.prototype.query as Query;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await startEngineModule({ url: database.url, events: [Ticked], projections: [], engine: { enabled: false } });
    await t.checkpoints.ensure([NAME]);
  });
  afterEach(() => {
    (pg.Client.prototype as { query: Query }).query = originalQuery;
  });
  afterAll(async () => {
    await t?.close();
    await database?.drop();
  });

  /**
   * From now on, a connection whose fence check has returned is paused for PAUSE_MS before it sends
   * anything more (as if its process had stopped right there); resolves when a fence check returned.
   */
  function pauseAfterFenceCheck(): Promise<void> {
    let fenceReturned!: () => void;
    const returned = new Promise<void>((resolve) => (fenceReturned = resolve));
    const paused = new WeakSet<pg.Client>();
    (pg.Client.prototype as { query: Query }).query = function (this: pg.Client, ...args: unknown[]) {
      const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string } | undefined)?.text;
      const callback = typeof args[args.length - 1] === 'function';
      if (callback || typeof text !== 'string') return originalQuery.apply(this, args);
      const send = async () => {
        if (paused.has(this)) {
          paused.delete(this);
          await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
        }
        const result = await (originalQuery.apply(this, args) as Promise<unknown>);
        if (text.includes('ledger_fence')) {
          paused.add(this);
          fenceReturned();
        }
        return result;
      };
      return send();
    };
    return returned;
  }

  /** Another instance takes the lease over; refused (lock_timeout) if it waited more than TAKEOVER_LOCK_TIMEOUT_MS for the row. */
  async function takeOver(): Promise<void> {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      await originalQuery.call(client, 'BEGIN');
      await originalQuery.call(client, `SET LOCAL lock_timeout = '${TAKEOVER_LOCK_TIMEOUT_MS}ms'`);
      await originalQuery.call(
        client,
        `UPDATE projection_checkpoints SET lease_owner = 'next-holder', lease_token = lease_token + 1,
           lease_expires_at = clock_timestamp() + interval '1 minute' WHERE name = $1`,
        [NAME],
      );
      await originalQuery.call(client, 'COMMIT');
    } finally {
      await client.end();
    }
  }

  it('a holder paused after its fence check keeps no takeover waiting, and what it committed is there', async () => {
    const token = (await t.checkpoints.acquireLease(NAME, 'holder', 60_000))!;
    const checked = pauseAfterFenceCheck();
    const step = runFenced({ name: NAME, owner: 'holder', token }, () =>
      t.store.transaction(() => t.store.append('fenced-commit-1', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM })),
    );
    await checked;
    await expect(takeOver()).resolves.toBeUndefined();
    await step;
    // The check passed and the COMMIT ran with it, before the takeover: the step is stored.
    expect((await t.store.readStream('fenced-commit-1')).map((event) => event.version)).toEqual([1]);
    expect((await checkpointRow(t.dataSource, NAME))?.leaseOwner).toBe('next-holder');
  });

  it('a refused check commits nothing, and the connection goes back to the pool usable', async () => {
    // The next holder's token, then taken over once more: that token is stale.
    const [{ token: stale }] = await rows<{ token: string }>(
      t.dataSource,
      `SELECT lease_token::text AS token FROM projection_checkpoints WHERE name = $1`,
      [NAME],
    );
    await t.dataSource.query(`UPDATE projection_checkpoints SET lease_token = lease_token + 1 WHERE name = $1`, [NAME]);
    const attempt = runFenced({ name: NAME, owner: 'next-holder', token: stale }, () =>
      t.store.transaction(() => t.store.append('fenced-commit-2', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM })),
    );
    await expect(attempt).rejects.toBeInstanceOf(LeaseLostError);
    expect(await t.store.readStream('fenced-commit-2')).toEqual([]);
    // Every connection of the pool still works (none left in an aborted transaction).
    const answers = await Promise.all(Array.from({ length: 12 }, () => t.dataSource.query('SELECT 1 AS one')));
    expect(answers.every((rows: Array<{ one: number }>) => rows[0].one === 1)).toBe(true);
  });
});
