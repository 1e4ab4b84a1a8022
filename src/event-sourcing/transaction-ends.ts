import { RecentSet } from '../shared/recent-set.js';

/** How many ended transaction ids are remembered for a waiter that asks just after the end. */
const REMEMBERED = 4096;

/**
 * The ends of this process's own write transactions, by transaction id (xid8 as text), so that a
 * projection runner held back by a transaction in flight (commit-order-log.ts: events are read only
 * below pg_snapshot_xmin, the oldest transaction in flight) reads again the moment that transaction
 * ends, instead of after a fixed delay. Reported: appends, when they commit (their events carry the
 * id); read models' live batches, when their transaction is over (advanceIfLeader returns its id).
 * Anything else is not known here: another instance's or psql's transactions, a transaction that
 * rolled back before it knew its id, and this process's units of work that append nothing,
 * checkpoint passes (one statement), process managers' checkpoint transactions and rebuild batches;
 * the waiter's delay bounds the wait, as before.
 */
export class TransactionEnds {
  private readonly recent = new RecentSet<string>(REMEMBERED);
  private readonly waiters = new Map<string, Set<() => void>>();

  ended(transactionId: string): void {
    this.recent.add(transactionId);
    const waiting = this.waiters.get(transactionId);
    if (!waiting) return;
    this.waiters.delete(transactionId);
    for (const wake of waiting) wake();
  }

  /** True as soon as the transaction ends (at once if it already has, as far as this process knows), false after `ms`. */
  waitFor(transactionId: string, ms: number): Promise<boolean> {
    if (this.recent.has(transactionId)) return Promise.resolve(true);
    return new Promise((resolve) => {
      let waiting = this.waiters.get(transactionId);
      if (!waiting) this.waiters.set(transactionId, (waiting = new Set()));
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        waiting.delete(wake);
        if (waiting.size === 0 && this.waiters.get(transactionId) === waiting) this.waiters.delete(transactionId);
        resolve(false);
      }, ms);
      waiting.add(wake);
    });
  }
}
