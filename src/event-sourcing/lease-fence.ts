import { AsyncLocalStorage } from 'node:async_hooks';
import { type EntityManager, QueryFailedError } from 'typeorm';

/** SQLSTATE raised by ledger_fence (migration 1764230400013) when the lease is no longer held. */
const LEASE_LOST_SQLSTATE = 'LF001';

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
 * the command bus and every await: EventStore checks it in each transaction just before COMMIT, so
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
      const driverError = (error instanceof QueryFailedError ? error.driverError : error) as { code?: string; message?: string };
      if (driverError?.code === LEASE_LOST_SQLSTATE) throw new LeaseLostError(name, driverError.message ?? 'refused');
      throw error;
    }
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
