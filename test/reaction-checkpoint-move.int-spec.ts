// A process manager's batch ends with one fenced autocommit UPDATE of its checkpoint row
// (advanceReaction; issue 14): its steps committed in transactions of their own, so the move is alone
// in its transaction. Fenced like every write of a holder: only this owner with this token, while
// the lease has not expired, the process manager runs and the checkpoint is still where the batch
// started. With no new checkpoint (no event of the batch done), it writes only the events completed
// ahead and keeps the attempts, so a failure counted after it still adds up to maxAttempts.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { advanceReaction } from '../src/event-sourcing/projection-advance-sql.js';
import type { QueryRunner } from 'typeorm';
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
    await t.dataSource.query(
      `UPDATE projection_checkpoints SET attempts = 2, last_error = 'boom', failed_position = 41, failed_at = now() WHERE name = $1`,
      [NAME],
    );
    const before = (await checkpointRow(t.dataSource, NAME))!;
    const state = await move('holder', token, start, undefined, [45, 47]);
    expect(state?.completedAhead).toEqual([45, 47]);
    expect(state?.checkpoint).toEqual(start);
    expect(state?.attempts).toBe(2);
    expect(state?.lastError).toBe('boom');
    expect(state?.failedPosition).toBe(41);
    expect(state?.failedAt).toBeInstanceOf(Date);
    expect(state?.leaseExpiresAt?.getTime()).toBe(before.leaseExpiresAt?.getTime());
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
    expect(state?.failedPosition).toBeNull();
    expect(state?.failedAt).toBeNull();
    expect(state?.completedAhead).toEqual([47]);
    expect(state!.leaseExpiresAt!.getTime()).toBeGreaterThan(before.getTime());
    expect((await checkpointRow(t.dataSource, NAME))!.checkpoint).toEqual(to);
    // The same move again is refused: the checkpoint is no longer where it started.
    expect(await move('holder', token, start, { transactionId: '901', position: 42 })).toBeNull();
  });
});

// From the hostile review of this change (helper-51): the move against what else writes the row.
describe("a process manager's checkpoint move, racing other writers of its row", () => {
  let database: TestDatabase;
  let t: EngineModule;
  let rowsMade = 0;
  const to: Checkpoint = { transactionId: '900', position: 41 };

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await startEngineModule({ url: database.url, events: [Ticked], projections: [], engine: { enabled: false } });
  });
  afterAll(async () => {
    await t?.close();
    await database?.drop();
  });

  async function leased(): Promise<{ name: string; token: string; start: Checkpoint }> {
    const name = `reaction-race-${rowsMade++}`;
    await t.checkpoints.ensure([name]);
    const token = (await t.checkpoints.acquireLease(name, 'holder', TTL_MS))!;
    return { name, token, start: (await checkpointRow(t.dataSource, name))!.checkpoint };
  }
  const move = (name: string, token: string, from: Checkpoint, next: Checkpoint | undefined) =>
    advanceReaction(t.dataSource.manager, name, { owner: 'holder', token }, from, next, TTL_MS, []);

  /** Runs `statement` in a transaction left open: the caller commits or rolls it back. */
  async function inOpenTransaction(statement: string, parameters: unknown[]): Promise<QueryRunner> {
    const runner = t.dataSource.createQueryRunner();
    await runner.connect();
    await runner.startTransaction();
    await runner.query(statement, parameters);
    return runner;
  }

  /** Whether `pending` is still unsettled after `ms` (it waits for a lock held by the test). */
  async function stillWaiting(pending: Promise<unknown>, ms = 200): Promise<boolean> {
    let settled = false;
    void pending.finally(() => (settled = true)).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, ms));
    return !settled;
  }

  it('waits for a lease renewal in flight, then moves', async () => {
    const { name, token, start } = await leased();
    const renewal = await inOpenTransaction(
      `UPDATE projection_checkpoints SET lease_expires_at = clock_timestamp() + interval '5 minutes' WHERE name = $1`,
      [name],
    );
    const pending = move(name, token, start, to);
    try {
      expect(await stillWaiting(pending)).toBe(true);
      await renewal.commitTransaction();
    } finally {
      await renewal.release();
    }
    expect((await pending)?.checkpoint).toEqual(to);
  });

  it('is refused when a takeover in flight commits, and moves when it rolls back', async () => {
    for (const outcome of ['commit', 'rollback'] as const) {
      const { name, token, start } = await leased();
      const takeover = await inOpenTransaction(
        `UPDATE projection_checkpoints SET lease_owner = 'next-holder', lease_token = lease_token + 1 WHERE name = $1`,
        [name],
      );
      const pending = move(name, token, start, to);
      try {
        expect(await stillWaiting(pending)).toBe(true);
        if (outcome === 'commit') await takeover.commitTransaction();
        else await takeover.rollbackTransaction();
      } finally {
        await takeover.release();
      }
      const state = await pending;
      expect(state === null).toBe(outcome === 'commit');
      expect((await checkpointRow(t.dataSource, name))!.checkpoint).toEqual(outcome === 'commit' ? start : to);
    }
  });

  it("waits for a step's fence (ledger_fence holds the row FOR SHARE until its COMMIT), without a deadlock", async () => {
    const { name, token, start } = await leased();
    const step = await inOpenTransaction(`SELECT ledger_fence($1, 'holder', $2::bigint)`, [name, token]);
    const pending = move(name, token, start, to);
    try {
      expect(await stillWaiting(pending)).toBe(true);
      await step.commitTransaction();
    } finally {
      await step.release();
    }
    expect((await pending)?.checkpoint).toEqual(to);
  });

  it('two moves from the same checkpoint at once: exactly one wins', async () => {
    const { name, token, start } = await leased();
    const results = await Promise.all([move(name, token, start, to), move(name, token, start, { transactionId: '901', position: 42 })]);
    expect(results.filter((state) => state !== null)).toHaveLength(1);
    const winner = results.find((state) => state !== null)!;
    expect((await checkpointRow(t.dataSource, name))!.checkpoint).toEqual(winner.checkpoint);
  });
});
