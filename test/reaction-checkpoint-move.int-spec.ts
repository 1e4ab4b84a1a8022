// A process manager's batch ends with one fenced autocommit UPDATE of its checkpoint row
// (advanceReaction; issue 14): its steps committed in transactions of their own, so the move is alone
// in its transaction. Fenced like every write of a holder: only this owner with this token, while
// the lease has not expired, the process manager runs and the checkpoint is still where the batch
// started. With no new checkpoint (no event of the batch done), it writes only the events completed
// ahead and keeps the attempts, so a failure counted after it still adds up to maxAttempts.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { advanceReaction } from '../src/event-sourcing/projection-advance-sql.js';
import type { Checkpoint } from '../src/event-sourcing/recorded-event.js';
import { type EngineModule, Ticked, checkpointRow, startEngineModule } from './support/projection-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const NAME = 'reaction-checkpoint-move';
const TTL_MS = 60_000;

describe("a process manager's checkpoint move (advanceReaction)", () => {
  let database: TestDatabase;
  let t: EngineModule;
  let token: string;
  let start: Checkpoint;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await startEngineModule({ url: database.url, events: [Ticked], projections: [], engine: { enabled: false } });
    await t.checkpoints.ensure([NAME]);
    token = (await t.checkpoints.acquireLease(NAME, 'holder', TTL_MS))!;
    start = (await checkpointRow(t.dataSource, NAME))!.checkpoint;
  });
  afterAll(async () => {
    await t?.close();
    await database?.drop();
  });

  const to: Checkpoint = { transactionId: '900', position: 41 };
  const move = (owner: string, tokenUsed: string, from: Checkpoint, next: Checkpoint | undefined, ahead: number[] = []) =>
    advanceReaction(t.dataSource.manager, NAME, { owner, token: tokenUsed }, from, next, TTL_MS, ahead);

  it('refuses another owner, a stale token, a checkpoint that is not where the batch started, and a stopped process manager', async () => {
    expect(await move('someone-else', token, start, to)).toBeNull();
    expect(await move('holder', String(BigInt(token) - 1n), start, to)).toBeNull();
    expect(await move('holder', token, { transactionId: '1', position: 1 }, to)).toBeNull();
    await t.dataSource.query(`UPDATE projection_checkpoints SET status = 'failed' WHERE name = $1`, [NAME]);
    expect(await move('holder', token, start, to)).toBeNull();
    await t.dataSource.query(`UPDATE projection_checkpoints SET status = 'running' WHERE name = $1`, [NAME]);
    expect((await checkpointRow(t.dataSource, NAME))!.checkpoint).toEqual(start);
  });

  it('refuses an expired lease', async () => {
    await t.dataSource.query(`UPDATE projection_checkpoints SET lease_expires_at = clock_timestamp() WHERE name = $1`, [NAME]);
    expect(await move('holder', token, start, to)).toBeNull();
    await t.dataSource.query(
      `UPDATE projection_checkpoints SET lease_expires_at = clock_timestamp() + interval '1 minute' WHERE name = $1`,
      [NAME],
    );
  });

  it('without a new checkpoint, writes the events completed ahead and keeps the attempts', async () => {
    await t.dataSource.query(`UPDATE projection_checkpoints SET attempts = 2, last_error = 'boom' WHERE name = $1`, [NAME]);
    const state = await move('holder', token, start, undefined, [45, 47]);
    expect(state?.completedAhead).toEqual([45, 47]);
    expect(state?.checkpoint).toEqual(start);
    expect(state?.attempts).toBe(2);
    expect(state?.lastError).toBe('boom');
  });

  it("moves the holder's checkpoint, clears the attempts and renews the lease", async () => {
    const [{ before }] = await t.dataSource.query<Array<{ before: Date }>>(
      `SELECT lease_expires_at AS before FROM projection_checkpoints WHERE name = $1`,
      [NAME],
    );
    const state = await move('holder', token, start, to, [47]);
    expect(state?.checkpoint).toEqual(to);
    expect(state?.attempts).toBe(0);
    expect(state?.lastError).toBeNull();
    expect(state?.completedAhead).toEqual([47]);
    expect(state!.leaseExpiresAt!.getTime()).toBeGreaterThan(before.getTime());
    expect((await checkpointRow(t.dataSource, NAME))!.checkpoint).toEqual(to);
    // The same move again is refused: the checkpoint is no longer where it started.
    expect(await move('holder', token, start, { transactionId: '901', position: 42 })).toBeNull();
  });
});
