import type { DataSource } from 'typeorm';
import type { CommitOrderLog, LogBatch } from './commit-order-log.js';
import type { Checkpoint } from './recorded-event.js';

/** Reads of the log in flight, per projector DataSource (one per process in practice). */
const inFlight = new WeakMap<DataSource, Map<string, Promise<LogBatch>>>();

/**
 * One append wakes every runner of the process at once, and runners that are caught up all sit at
 * the same checkpoint: each would send the same read of the log, a few microseconds apart (four
 * reads per lone deposit). A runner whose read is the same as one already in flight (same
 * checkpoint, same batch size) takes that read's answer instead of sending its own.
 *
 * Only a read started after the same wake-up is shared (`sequence`, the notifier's count of
 * wake-ups, is part of the key): a runner woken by a later append never takes a read started before
 * that append was announced, so it can miss nothing it would have seen alone; it is as if it had
 * read a few microseconds earlier, which its wait policy already allows for (a wake-up during its
 * pass makes it read again). The answer is shared, not copied: projections treat the events of a
 * batch as read-only.
 */
export function sharedReadBatch(
  dataSource: DataSource,
  log: CommitOrderLog,
  after: Checkpoint,
  limit: number,
  sequence: number,
): Promise<LogBatch> {
  let reads = inFlight.get(dataSource);
  if (!reads) inFlight.set(dataSource, (reads = new Map<string, Promise<LogBatch>>()));
  const key = `${sequence}:${after.transactionId}:${after.position}:${limit}`;
  const pending = reads.get(key);
  if (pending) return pending;
  const read = log.readBatch(after, limit).finally(() => reads.delete(key));
  reads.set(key, read);
  return read;
}
