import type { Logger } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { compareCheckpoints, isSameCheckpoint } from './checkpoint-order.js';
import type { CommitOrderLog } from './commit-order-log.js';
import { COMPLETED_AHEAD_LIMIT } from './completed-ahead.js';
import type { ProcessManager } from './process-manager.js';
import { type ProjectionState, type Row, toState } from './projection-checkpoint-row.js';
import { segmentOfKey, segmentsOf } from './projection-segments.js';
import { type Projection, applyToProjection } from './projection.js';
import { type Checkpoint, type RecordedEvent, checkpointOf } from './recorded-event.js';
import { sql } from './sql.js';
import { type Subscriber, isProcessManager, keyOf } from './subscriber.js';

/** The stored segments of a projection cannot be changed to the configured count now; nothing was changed. */
export class ProjectionLayoutError extends Error {
  constructor(projection: string, stored: number, wanted: number, reason: string) {
    super(
      `Projection ${projection} is stored with ${stored} segment(s) and configured with ${wanted}: ` +
        `refusing to change it now (${reason}). Keep the old count, or stop every instance and fix that first.`,
    );
    this.name = 'ProjectionLayoutError';
  }
}

/**
 * Makes the projection's checkpoint rows match the configured segment count (returns the count the
 * rows now have), at start, before any
 * runner starts. Missing: created at the start of the log. Same count: left alone. Another count (a
 * change of N): the keys move between segments, so the old segments are replaced by new ones that all
 * start at ONE checkpoint, never each where it was (that would apply a key's events out of order or
 * twice):
 * - a projection with tables: each old segment behind the latest one is first brought to it, in this
 *   very transaction (its own keys' events up to there, all committed: a commit-safe reader reached
 *   them), and the new segments start at that latest checkpoint: nothing skipped, nothing twice;
 * - a process manager (no table to write here: its steps are commands of their own): the new segments
 *   start at the EARLIEST old checkpoint, and remember as completed ahead (completed-ahead.ts) what
 *   the old segments had already reacted to past it — their own keys' events up to their checkpoints
 *   and their own completed_ahead — so none of it is reacted to again. A step that cannot be taken
 *   back (the relay's publish: a broker drops a republish only within its duplicate window) must not
 *   repeat because the count changed (found in review: the layout change dropped completed_ahead and
 *   republished everything between the earliest and the other old checkpoints).
 * Refused (ProjectionLayoutError; the instance does not start) while another instance holds a live
 * lease on an old segment (it still runs the old layout), or a segment is failed or rebuilding.
 * Serialised between instances starting at once by a transaction-level advisory lock.
 */
export async function ensureSegmentLayout(
  dataSource: DataSource,
  log: CommitOrderLog,
  logger: Logger,
  projection: Subscriber,
  count: number,
  /**
   * False for an instance that runs no projection, or a CLI: it creates missing rows but changes no
   * layout, and runs the stored one.
   */
  mayChange = true,
): Promise<number> {
  return dataSource.transaction(async (manager) => {
    await manager.query(`SELECT pg_advisory_xact_lock(hashtext('ledger-projection-layout'), hashtext($1))`, [projection.name]);
    const { rows } = await sql<Row & { lease_live: boolean }>(
      manager,
      `SELECT *, coalesce(lease_expires_at > clock_timestamp(), false) AS lease_live
         FROM projection_checkpoints WHERE projection = $1 ORDER BY segment FOR UPDATE`,
      [projection.name],
    );
    if (rows.length === 0) {
      await insertSegments(manager, projection.name, count, { transactionId: '0', position: 0 }, '0');
      return count;
    }
    const stored = rows.map(toState);
    const storedCount = stored[0].segments;
    if (!mayChange || (stored.length === count && stored.every((row) => row.segments === count))) return storedCount;
    const refuse = (reason: string) => new ProjectionLayoutError(projection.name, storedCount, count, reason);
    if (rows.some((row) => row.lease_live)) throw refuse('an instance still holds a live lease on one of its segments');
    if (stored.some((row) => row.rebuild)) throw refuse('a rebuild is in progress');
    if (stored.some((row) => row.status === 'failed')) throw refuse('a segment is failed: retry or skip it first');
    if (stored.length !== storedCount || stored.some((row) => row.segments !== storedCount))
      throw refuse('its stored rows are inconsistent');

    const ordered = stored.map((row) => row.checkpoint).sort(compareCheckpoints);
    const earliest = ordered[0];
    const latest = ordered[ordered.length - 1];
    let start = latest;
    let caughtUp = 0;
    let carried: number[][] = [];
    if (isProcessManager(projection)) {
      start = earliest; // nothing of any old segment's keys is skipped; what they did is carried over
      carried = await reactedSince(manager, log, projection, stored, earliest, count);
    } else {
      for (const row of stored) caughtUp += await catchUp(manager, log, projection, row, latest);
    }
    const token = stored.reduce((max, row) => (BigInt(row.leaseToken) > max ? BigInt(row.leaseToken) : max), 0n) + 1n;
    await sql(manager, `DELETE FROM projection_checkpoints WHERE projection = $1`, [projection.name]);
    await insertSegments(manager, projection.name, count, start, token.toString(), carried);
    logger.log(
      `Projection ${projection.name}: ${storedCount} segment(s) replaced by ${count}, all from position ${start.position}` +
        (!isProcessManager(projection)
          ? ` (${caughtUp} event(s) applied first to bring every old segment there)`
          : ` (the earliest old checkpoint; ${carried.flat().length} event(s) the old segments had reacted to past it are remembered, not reacted to again)`),
    );
    return count;
  });
}

/** Applies the events of an old segment's own keys from its checkpoint up to `until`; their count. */
async function catchUp(
  manager: EntityManager,
  log: CommitOrderLog,
  projection: Projection,
  row: ProjectionState,
  until: Checkpoint,
): Promise<number> {
  if (isSameCheckpoint(row.checkpoint, until)) return 0;
  const events = (await log.readCommitted(row.checkpoint, until, manager)).filter(
    (event) => segmentOfKey(keyOf(projection, event), row.segments) === row.segment,
  );
  if (events.length > 0) await applyToProjection(projection, events, manager, false); // a replay: no spans
  return events.length;
}

async function insertSegments(
  manager: EntityManager,
  projection: string,
  count: number,
  at: Checkpoint,
  token: string,
  /** By new segment: positions it starts with as completed ahead (a process manager's, see reactedSince). */
  completedAhead: ReadonlyArray<readonly number[]> = [],
): Promise<void> {
  const segments = segmentsOf(projection, count);
  await sql(
    manager,
    `INSERT INTO projection_checkpoints (name, projection, segment, segments, transaction_id, position, lease_token)
       SELECT row, $2, segment, $3, $4::xid8, $5, $6::bigint FROM unnest($1::text[]) WITH ORDINALITY AS s(row, ordinal),
         LATERAL (SELECT (ordinal - 1)::int AS segment) i`,
    [segments.map((segment) => segment.row), projection, count, at.transactionId, at.position, token],
  );
  for (const segment of segments) {
    const positions = completedAhead[segment.index] ?? [];
    if (positions.length > 0) {
      await sql(manager, `UPDATE projection_checkpoints SET completed_ahead = $2::bigint[] WHERE name = $1`, [segment.row, positions]);
    }
  }
}

/** Events read at once while looking for what a process manager's old segments reacted to (reactedSince). */
const REACTED_PAGE = 1_000;

/**
 * A process manager's re-split starts every new segment at the earliest old checkpoint: what the old
 * segments had already reacted to past it — each one's own keys' events up to its checkpoint (an
 * event an operator skipped there included: it was passed), and its completed_ahead — by new segment
 * (the segment of its key for the new count), as each new segment's completed_ahead. Only events it
 * has a handler for (reacting to the others is nothing). Per new segment at most
 * COMPLETED_AHEAD_LIMIT, the earliest in commit order (for each key a prefix of its events: the rest
 * is reacted to again, in order — at least once, as after a crash); the log is read a page at a time
 * and no further than that needs, keeping positions only. Read without holding back for transactions
 * in flight: every event read is at or below an old checkpoint, or one an old holder read and
 * completed.
 */
async function reactedSince(
  manager: EntityManager,
  log: CommitOrderLog,
  processManager: ProcessManager,
  stored: readonly ProjectionState[],
  earliest: Checkpoint,
  count: number,
): Promise<number[][]> {
  let kept: Checkpoint[][] = Array.from({ length: count }, () => []);
  const seen = new Set<number>();
  const firstOnes = (segment: readonly Checkpoint[]) => [...segment].sort(compareCheckpoints).slice(0, COMPLETED_AHEAD_LIMIT);
  for (const row of stored) {
    const fromRow: number[] = new Array<number>(count).fill(0);
    const keep = (event: RecordedEvent) => {
      if (segmentOfKey(keyOf(processManager, event), row.segments) !== row.segment) return; // another old segment's
      if (compareCheckpoints(checkpointOf(event), earliest) <= 0 || seen.has(event.position)) return;
      seen.add(event.position);
      if (!processManager.handlers.handlerFor(event)) return;
      const segment = segmentOfKey(keyOf(processManager, event), count);
      kept[segment].push(checkpointOf(event));
      fromRow[segment]++;
    };
    // Read in commit order: once every new segment has the limit from this row, the rest of it is later.
    for (let after = earliest; compareCheckpoints(after, row.checkpoint) < 0 && fromRow.some((n) => n < COMPLETED_AHEAD_LIMIT);) {
      const page = await log.readCommitted(after, row.checkpoint, manager, REACTED_PAGE);
      if (page.length === 0) break;
      for (const event of page) keep(event);
      after = checkpointOf(page[page.length - 1]);
    }
    for (const event of await log.readPositions(row.completedAhead, manager)) keep(event);
    kept = kept.map(firstOnes);
  }
  return kept.map((segment) => segment.map((checkpoint) => checkpoint.position).sort((a, b) => a - b));
}
