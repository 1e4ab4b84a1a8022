import type { EntityManager } from 'typeorm';
import type { EventTypeRegistry } from './event-type.registry.js';
import { MAX_STREAM_VERSION } from './expected-version.js';
import type { RecordedEvent } from './recorded-event.js';
import { type PreparedStatement, prepared } from './sql.js';
import { EVENT_COLUMNS, type StoredEventRow, toRecordedEvent, toSafeNumber } from './stored-event.row.js';

/** A stored snapshot as readStreamAfterSnapshot / readSnapshot find it (its state still JSON). */
export interface StoredSnapshot {
  readonly version: number;
  readonly position: number;
  readonly state: unknown;
}

/**
 * An aggregate's newest usable snapshot, then the stream's events after it: two prepared statements
 * with the version bound known. (One statement joining them was measured: the planner cannot see
 * the snapshot's version, guesses a third of the stream, and on a table dominated by one long
 * stream scans the whole table — loading a snapshotted account went from 0.9 to 2.5 ms.)
 */
const SNAPSHOT_SQL: PreparedStatement = {
  // The snapshots table keeps one row per interval crossing (time travel starts from an old one): the
  // newest at or before $4 is one backward step of the primary key (stream_id, schema_version, version).
  name: 'ledger_snapshot_v2',
  text: `SELECT version, position, state FROM snapshots
         WHERE stream_id = $1 AND schema_version = $3 AND version <= $4 AND aggregate = $2
         ORDER BY version DESC LIMIT 1`,
};

const STREAM_AFTER_SQL: PreparedStatement = {
  name: 'ledger_stream_after_v1',
  text: `SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version > $2 ORDER BY version`,
};

/** A stream's events between two versions: every load of an aggregate without snapshots (a transfer's, twice per transfer). */
const STREAM_RANGE_SQL: PreparedStatement = {
  name: 'ledger_stream_range_v1',
  text: `SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version >= $2 AND version <= $3 ORDER BY version`,
};

const STREAM_VERSION_SQL: PreparedStatement = {
  name: 'ledger_stream_version_v1',
  text: 'SELECT coalesce(max(version), 0) AS version FROM events WHERE stream_id = $1',
};

/**
 * Reads of one stream at a time: its version, its events, its snapshots, its version as of an
 * instant. The command side (EventStore: its reads join the unit of work in progress) and the query
 * side (EventLogReader: on the query side's connection) both read streams this way; neither kind of
 * reader can append.
 */
export class StreamReads {
  constructor(
    /** The connection to read through, asked for on every read (the ambient unit of work may change). */
    private readonly connection: () => EntityManager,
    protected readonly registry: EventTypeRegistry,
  ) {}

  private get reader(): EntityManager {
    return this.connection();
  }

  /** The stream's current version; 0 when it does not exist. */
  async streamVersion(streamId: string): Promise<number> {
    const [row] = await prepared<{ version: number }>(this.reader, STREAM_VERSION_SQL, [streamId]);
    return row.version;
  }

  /**
   * The newest snapshot of `aggregate` at `schemaVersion` for the stream, if any, and the stream's
   * events after it (all of them without one): a command's first step, on prepared statements.
   */
  async readStreamAfterSnapshot(
    streamId: string,
    snapshot: { readonly aggregate: string; readonly schemaVersion: number },
  ): Promise<{ snapshot?: StoredSnapshot; events: RecordedEvent[] }> {
    const found = await this.readSnapshot(streamId, snapshot, MAX_STREAM_VERSION);
    const rows = await prepared<StoredEventRow>(this.reader, STREAM_AFTER_SQL, [streamId, found?.version ?? 0]);
    return { snapshot: found, events: rows.map((event) => toRecordedEvent(event, this.registry)) };
  }

  /** The newest snapshot of `aggregate` at `schemaVersion` for the stream at or before a version. */
  async readSnapshot(
    streamId: string,
    snapshot: { readonly aggregate: string; readonly schemaVersion: number },
    atOrBeforeVersion: number,
  ): Promise<StoredSnapshot | undefined> {
    const [row] = await prepared<{ version: number; position: string; state: unknown }>(this.reader, SNAPSHOT_SQL, [
      streamId,
      snapshot.aggregate,
      snapshot.schemaVersion,
      atOrBeforeVersion,
    ]);
    return row ? { version: row.version, position: toSafeNumber(row.position), state: row.state } : undefined;
  }

  /**
   * The stream "as of" an instant: the version before the first event recorded after it (a prefix of
   * the stream, even where old rows' recorded_at is not in version order), and the current version.
   * Compared at millisecond precision, the precision recordedAt is shown with.
   */
  async versionAsOf(streamId: string, instant: Date): Promise<{ version: number; currentVersion: number }> {
    const [row] = (await this.reader.query(
      `SELECT (SELECT min(version) FROM events WHERE stream_id = $1 AND date_trunc('milliseconds', recorded_at) > $2) AS first_after,
              (SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1) AS current_version`,
      [streamId, instant],
    )) as Array<{ first_after: number | null; current_version: number }>;
    return { version: row.first_after === null ? row.current_version : row.first_after - 1, currentVersion: row.current_version };
  }

  /** One stream's events in version order, optionally between two versions (inclusive). */
  async readStream(streamId: string, range: { fromVersion?: number; toVersion?: number } = {}): Promise<RecordedEvent[]> {
    const rows = await prepared<StoredEventRow>(this.reader, STREAM_RANGE_SQL, [
      streamId,
      range.fromVersion ?? 1,
      range.toVersion ?? MAX_STREAM_VERSION,
    ]);
    return rows.map((row) => toRecordedEvent(row, this.registry));
  }
}
