import type { Checkpoint } from './recorded-event.js';

/** Compares two places in the log in commit order: (transaction id, position). */
export function compareCheckpoints(a: Checkpoint, b: Checkpoint): number {
  const byTransaction = BigInt(a.transactionId) - BigInt(b.transactionId);
  if (byTransaction !== 0n) return byTransaction < 0n ? -1 : 1;
  return Math.sign(a.position - b.position);
}

export function isSameCheckpoint(a: Checkpoint, b: Checkpoint): boolean {
  return compareCheckpoints(a, b) === 0;
}

export function laterOf(a: Checkpoint, b: Checkpoint): Checkpoint {
  return compareCheckpoints(a, b) >= 0 ? a : b;
}
