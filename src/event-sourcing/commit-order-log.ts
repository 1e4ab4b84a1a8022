import type { DataSource, EntityManager } from 'typeorm';
import type { EventTypeRegistry } from './event-type.registry.js';
import type { Checkpoint, RecordedEvent } from './recorded-event.js';
import { START_OF_LOG, checkpointOf } from './recorded-event.js';
import { type PreparedStatement, prepared } from './sql.js';
import { EVENT_COLUMNS, type StoredEventRow, toRecordedEvent, toSafeNumber } from './stored-event.row.js';

export interface ReadAllResult {
  readonly events: readonly RecordedEvent[];
  /** Where to continue from: the last returned event, or the `after` given when nothing was returned. */
  readonly checkpoint: Checkpoint;
}

/** A projection runner's read: the next events, and whether later ones are committed but held back. */
export interface LogBatch {
  readonly events: readonly RecordedEvent[];
  /** Committed events after the checkpoint that an older transaction still in flight holds back. */
  readonly heldBack: boolean;
}

/**
 * The runners' read, for their hot loop: the next events after a checkpoint in commit-safe order
 * (as readAll), and whether committed events beyond them are held back by an older transaction
 * still in flight, in one round trip. The first row always exists (LEFT JOIN LATERAL): it carries
 * held_back, and an event unless the batch is empty. One statement, so both halves see the same
 * snapshot.
 *
 * held_back asks whether the log's newest transaction id is at or above the horizon: a backward scan
 * of the commit-order index that stops at the newest committed event (it steps over the appends
 * still in flight, and aborted ones not yet vacuumed, at the top: its only cost that grows). It looks only at transaction ids, not at the checkpoint: a
 * checkpoint is always below the horizon (it was read below an earlier one, and the horizon never
 * moves back), so every such event is after it. Written as `EXISTS (… WHERE transaction_id >= the
 * horizon)` it read the whole table on every read: PostgreSQL cannot estimate a comparison with
 * pg_snapshot_xmin(), guesses that a third of the rows match, and plans the EXISTS as a scan of the
 * table that stops at the first match, of which there is usually none (test:
 * projection-read-plan). Its cost grew with the log: 7 ms a read at 21,000 events, two thirds of
 * PostgreSQL's CPU while transfers settled.
 */
export const READ_BATCH_SQL: PreparedStatement = {
  name: 'ledger_read_batch_v4',
  text: `SELECT h.held_back, e.* FROM
           (SELECT coalesce(
              (SELECT transaction_id >= pg_snapshot_xmin(pg_current_snapshot())
               FROM events ORDER BY transaction_id DESC LIMIT 1),
              false) AS held_back) h
           LEFT JOIN LATERAL (
             SELECT ${EVENT_COLUMNS} FROM events
             WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
               AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY transaction_id, position
             LIMIT $3) e ON true
         ORDER BY e.transaction_id, e.position`,
};

/**
 * The global log, read in commit-safe order (transaction id, position) on one data source: the query
 * side's feeds and the projection engine each have their own (EventLogReader.log, ProjectionEngine),
 * so projections read through the projector's connection. Read-only: nothing here appends.
 */
export class CommitOrderLog {
  constructor(
    private readonly dataSource: DataSource,
    private readonly registry: EventTypeRegistry,
  ) {}

  private get reader(): EntityManager {
    return this.dataSource.manager;
  }

  /** The last event a commit-safe reader can see now (where "from now on" starts), or the start. */
  async headCheckpoint(): Promise<Checkpoint> {
    const [row] = (await this.reader.query(
      `SELECT transaction_id, position FROM events
       WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
       ORDER BY transaction_id DESC, position DESC LIMIT 1`,
    )) as Array<{ transaction_id: string; position: string }>;
    return row ? { transactionId: row.transaction_id, position: toSafeNumber(row.position) } : START_OF_LOG;
  }

  /** Where the event at a position sits in commit order, or null when there is no such event. */
  async checkpointAt(position: number): Promise<Checkpoint | null> {
    const [row] = (await this.reader.query('SELECT transaction_id FROM events WHERE position = $1', [position])) as Array<{
      transaction_id: string;
    }>;
    return row ? { transactionId: row.transaction_id, position } : null;
  }

  /**
   * The global log after a checkpoint, in commit-safe order. A position is taken at INSERT but
   * becomes visible at COMMIT, so "position > last seen" would skip an event whose transaction took an
   * earlier position and committed later. Reading only transactions older than every transaction
   * still in flight (pg_snapshot_xmin), in (transaction id, position) order, never skips one.
   */
  async readAll(
    after: Checkpoint = START_OF_LOG,
    limit = 1000,
    manager?: EntityManager,
    filter: { types?: readonly string[]; streamId?: string } = {},
  ): Promise<ReadAllResult> {
    const rows = (await (manager ?? this.dataSource.manager).query(
      `SELECT ${EVENT_COLUMNS} FROM events
       WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
         AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
         AND ($4::text[] IS NULL OR type = ANY($4))
         AND ($5::text IS NULL OR stream_id = $5)
       ORDER BY transaction_id, position
       LIMIT $3`,
      [after.transactionId, after.position, limit, filter.types?.length ? filter.types : null, filter.streamId ?? null],
    )) as StoredEventRow[];
    const events = rows.map((row) => toRecordedEvent(row, this.registry));
    return { events, checkpoint: events.length ? checkpointOf(events[events.length - 1]) : after };
  }

  /**
   * The next `limit` events after the checkpoint in commit-safe order (as readAll), and whether
   * committed events beyond them are held back, in one prepared statement (READ_BATCH_SQL).
   */
  async readBatch(after: Checkpoint, limit: number): Promise<LogBatch> {
    const rows = await prepared<StoredEventRow & { held_back: boolean }>(this.dataSource.manager, READ_BATCH_SQL, [
      after.transactionId,
      after.position,
      limit,
    ]);
    const events = (rows[0].position as string | null) === null ? [] : rows.map((row) => toRecordedEvent(row, this.registry));
    return { events, heldBack: rows[0].held_back };
  }

  /**
   * Every committed event after `after` (up to `until`, inclusive) in commit order, WITHOUT holding
   * back for transactions in flight. Only correct where the caller knows nothing relevant is in
   * flight: below a checkpoint a commit-safe reader already reached, or under a lock that keeps the
   * writers of a projection's tables out (the swap at the end of a rebuild). At most `limit` of them, when given.
   */
  async readCommitted(after: Checkpoint, until: Checkpoint | undefined, manager: EntityManager, limit?: number): Promise<RecordedEvent[]> {
    const rows = (await manager.query(
      `SELECT ${EVENT_COLUMNS} FROM events
       WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
         AND ($3::xid8 IS NULL OR (transaction_id, position) <= ($3::xid8, $4::bigint))
       ORDER BY transaction_id, position
       LIMIT $5`,
      [after.transactionId, after.position, until?.transactionId ?? null, until?.position ?? null, limit ?? null],
    )) as StoredEventRow[];
    return rows.map((row) => toRecordedEvent(row, this.registry));
  }

  /** The events at these positions (committed ones; a position without an event is left out), in commit order. */
  async readPositions(positions: readonly number[], manager: EntityManager): Promise<RecordedEvent[]> {
    if (positions.length === 0) return [];
    const rows = (await manager.query(
      `SELECT ${EVENT_COLUMNS} FROM events WHERE position = ANY($1::bigint[]) ORDER BY transaction_id, position`,
      [positions],
    )) as StoredEventRow[];
    return rows.map((row) => toRecordedEvent(row, this.registry));
  }
}
