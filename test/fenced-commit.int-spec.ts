// A process manager's step commits only while its holder still holds the lease: ledger_fence locks
// the lease row FOR SHARE and checks the holding, then the transaction commits. If the check and the
// COMMIT are two round trips, a holder paused between them (a GC pause, SIGSTOP, a saturated event
// loop) keeps that lock, and the next holder's takeover (an UPDATE of the row) waits for it — up to
// the idle-in-transaction timeout — with every segment of the projection stalled meanwhile. Sent in
// one message, the lock lasts only as long as the server takes to run the COMMIT.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { LeaseLostError, NO_STREAM, runFenced } from '../src/event-sourcing/index.js';
import { type EngineModule, Ticked, checkpointRow, rows, startEngineModule } from './support/projection-fixtures.js';
import { pauseAfterStatement, restore, takeOverWithin } from './support/paused-holder.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const NAME = 'fenced-commit';
/** How long the holder is "paused" after its fence check returns: far longer than the takeover waits. */
const PAUSE_MS = 3_000;
/** How long the takeover may wait for the row's lock before it gives up (lock_timeout). */
const TAKEOVER_LOCK_TIMEOUT_MS = 1_000;

describe('a fenced unit of work checks its lease and commits in one message', () => {
  let database: TestDatabase;
  let t: EngineModule;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await startEngineModule({ url: database.url, events: [Ticked], projections: [], engine: { enabled: false } });
    await t.checkpoints.ensure([NAME]);
  });
  afterEach(restore);
  afterAll(async () => {
    await t?.close();
    await database?.drop();
  });

  it('a holder paused after its fence check keeps no takeover waiting, and what it committed is there', async () => {
    const token = (await t.checkpoints.acquireLease(NAME, 'holder', 60_000))!;
    const checked = pauseAfterStatement((text) => text.includes('ledger_fence'), PAUSE_MS);
    const step = runFenced({ name: NAME, owner: 'holder', token }, () =>
      t.store.transaction(() => t.store.append('fenced-commit-1', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM })),
    );
    await checked;
    await expect(takeOverWithin(database.url, 'name = $1', NAME, 'next-holder', TAKEOVER_LOCK_TIMEOUT_MS)).resolves.toBeUndefined();
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
