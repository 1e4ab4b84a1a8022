import { AsyncLocalStorage } from 'node:async_hooks';
import { textLiteral, wholeNumberLiteral } from './sql-literals.js';
import { type EntityManager, QueryFailedError, type QueryRunner } from 'typeorm';

/**
 * SQLSTATE raised by ledger_fence (migration 1764230400013) when the lease is no longer held, and by
 * ledger_advance_checkpoint (migration 1764230400020) when a read model's batch is not its holder's.
 */
export const LEASE_LOST_SQLSTATE = 'LF001';

/**
 * A write made on behalf of a projection's lease holder was refused: another process took the lease
 * over (a newer token), or it expired. Nothing of that transaction was committed.
 */
export class LeaseLostError extends Error {
  constructor(
    readonly projection: string,
    detail: string,
  ) {
    super(`Lease of projection ${projection} lost: ${detail}`);
    this.name = 'LeaseLostError';
  }
}

/** One holding of a projection's lease: who holds it, and the token the database gave this holding. */
export interface LeaseHolding {
  readonly name: string;
  readonly owner: string;
  /** bigint as pg returns it (a string). */
  readonly token: string;
}

/**
 * Work done for a lease holder (a process manager's reaction) carries its holding with it, through
 * the command bus and every await: EventStore checks it in each transaction with its COMMIT, so
 * a holder that lost its lease (paused, partitioned, slower than its lease) commits nothing.
 */
export class LeaseFence {
  constructor(readonly holding: LeaseHolding) {}

  /**
   * In `manager`'s transaction: locks the checkpoint row FOR SHARE until COMMIT (no takeover can
   * commit in between) and refuses unless the holding is still the live lease.
   */
  async verify(manager: EntityManager): Promise<void> {
    const { name, owner, token } = this.holding;
    try {
      await manager.query('SELECT ledger_fence($1, $2, $3::bigint)', [name, owner, token]);
    } catch (error) {
      throw this.asLeaseLost(error);
    }
  }

  /**
   * Checks the holding and commits `queryRunner`'s transaction in ONE message (the simple query
   * protocol runs both statements; the COMMIT only if the check passed). The row's FOR SHARE lock then
   * lasts only while the server runs the COMMIT: a holder paused between two round trips (a GC pause,
   * SIGSTOP) would otherwise keep it, and every takeover waiting for the row with it, until the
   * idle-in-transaction timeout. A refused check leaves the transaction open and aborted: the caller
   * rolls it back. A connection lost meanwhile leaves the outcome unknown, as for any COMMIT. The
   * values are inlined (the simple protocol takes no parameters), as literals.
   */
  async verifyAndCommit(queryRunner: QueryRunner): Promise<void> {
    const { name, owner, token } = this.holding;
    try {
      await queryRunner.query(
        `SELECT ledger_fence(${textLiteral(name)}, ${textLiteral(owner)}, ${wholeNumberLiteral(token)}::bigint); COMMIT`,
      );
    } catch (error) {
      throw this.asLeaseLost(error);
    }
  }

  private asLeaseLost(error: unknown): unknown {
    const driverError = (error instanceof QueryFailedError ? error.driverError : error) as { code?: string; message?: string };
    return driverError?.code === LEASE_LOST_SQLSTATE ? new LeaseLostError(this.holding.name, driverError.message ?? 'refused') : error;
  }
}

const ambientFence = new AsyncLocalStorage<LeaseFence>();

/** Runs `work` with every EventStore transaction it makes (directly or via commands) fenced by `holding`. */
export function runFenced<T>(holding: LeaseHolding, work: () => Promise<T>): Promise<T> {
  return ambientFence.run(new LeaseFence(holding), work);
}

/** The fence of the work in progress, if it runs for a lease holder. */
export function currentFence(): LeaseFence | undefined {
  return ambientFence.getStore();
}

/** Whether `error` is, or wraps (ProjectionApplyError's `error`, an Error's `cause`), a refused fence. */
export function isLeaseLost(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    if (current instanceof LeaseLostError) return true;
    current = (current as { error?: unknown; cause?: unknown }).error ?? (current as { cause?: unknown }).cause;
  }
  return false;
}
