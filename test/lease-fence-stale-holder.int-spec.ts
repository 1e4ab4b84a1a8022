import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { NO_STREAM, runFenced } from '../src/event-sourcing/index.js';
import { type EngineModule, Ticked, checkpointRow, startEngineModule } from './support/projection-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

/** Review2: write paths of a stale lease holder that the token fence does not cover. */
// Found in review: writes of a stale lease holder that escaped the fence.
describe('a stale lease holder writes nothing, not even outside its fenced steps', () => {
  const NAME = 'review2-fence';
  let database: TestDatabase;
  let t: EngineModule;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await startEngineModule({ url: database.url, events: [Ticked], projections: [], engine: { enabled: false } });
    await t.checkpoints.ensure([NAME]);
  });
  afterAll(async () => {
    await t?.close();
    await database?.drop();
  });

  const expire = () =>
    t.dataSource.query(`UPDATE projection_checkpoints SET lease_expires_at = clock_timestamp() - interval '1 second' WHERE name = $1`, [
      NAME,
    ]);

  it("recordFailure of a stale holder (taken over) must not count attempts or stop the new holder's projection", async () => {
    const oldToken = (await t.checkpoints.acquireLease(NAME, 'old-owner', 60_000))!;
    await expire();
    const current = (await t.checkpoints.acquireLease(NAME, 'new-owner', 60_000))!;
    expect(current).not.toBeNull();
    // The old holder's reaction failed (a non-lease error raised before any fenced COMMIT): it counts
    // the failure under its own, stale holding.
    expect(await t.checkpoints.recordFailure(NAME, { owner: 'old-owner', token: oldToken }, 1, 'stale holder failure', 1)).toBeNull();
    const row = await checkpointRow(t.dataSource, NAME);
    expect(row?.leaseOwner).toBe('new-owner');
    expect(row?.status).toBe('running');
    expect(row?.attempts).toBe(0);
  });

  it('fenced work nested in an unfenced unit of work is checked before its savepoint is released', async () => {
    await t.dataSource.query(`UPDATE projection_checkpoints SET status='running', attempts=0, failed_position=NULL WHERE name=$1`, [NAME]);
    await expire();
    const stale = '1'; // a token that is not the live one
    await expect(
      t.store.transaction(() =>
        runFenced({ name: NAME, owner: 'old-owner', token: stale }, () =>
          t.store.append('review2-nested', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM }),
        ),
      ),
    ).rejects.toThrow(/lease/i);
    expect(await t.store.readStream('review2-nested')).toEqual([]);
  });
});
