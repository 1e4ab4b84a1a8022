import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable, Optional } from '@nestjs/common';
import { EventBus } from '@nestjs/cqrs';
import { DataSource, type EntityManager, QueryFailedError } from 'typeorm';
import { Clock } from './clock.js';
import { COMMAND_RUNNER_OPTIONS, type CommandRunnerOptions } from './command-runner-options.js';
import { ConcurrencyConflictError, UnitOfWorkConflict, WrongExpectedVersionError } from './errors.js';
import type { CommandMetadata } from './command-metadata.js';
import { EventTypeRegistry } from './event-type.registry.js';
import { ANY, type ExpectedVersion, toSqlExpectedVersion } from './expected-version.js';
import { currentFence } from './lease-fence.js';
import { ProjectionRegistry } from './projection.registry.js';
import type { Checkpoint, EventMetadata, RecordedEvent } from './recorded-event.js';
import { START_OF_LOG, checkpointOf } from './recorded-event.js';
import { type PreparedStatement, prepared } from './sql.js';
import { EVENT_COLUMNS, type StoredEventRow, toRecordedEvent, toSafeNumber } from './stored-event.row.js';

export interface AppendOptions {
  readonly expectedVersion: ExpectedVersion;
  /**
   * Correlation, causation and actor of every event of the call (the command's, see
   * CommandMetadata); without it each event is its own correlation and cause.
   */
  readonly metadata?: CommandMetadata;
  /** Caller-chosen event ids (one per event), e.g. deterministic ids that make a retried step a no-op. */
  readonly eventIds?: readonly string[];
}

export interface AppendResult {
  readonly streamId: string;
  /** The stream's version after the append. */
  readonly version: number;
  /** Global position of the last appended event. */
  readonly position: number;
  readonly events: readonly RecordedEvent[];
}

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

const MAX_VERSION = 2_147_483_647;

const STREAM_AFTER_SQL: PreparedStatement = {
  name: 'ledger_stream_after_v1',
  text: `SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version > $2 ORDER BY version`,
};

/**
 * readAll and hasCommittedAfter in one round trip, for the projection runners' hot loop. The first
 * row always exists (LEFT JOIN LATERAL): it carries held_back, and an event unless the batch is empty.
 * One statement, so both halves see the same snapshot.
 *
 * held_back looks only at transaction_id ≥ the horizon, not at the checkpoint: a checkpoint is always
 * below the horizon (it was read below an earlier one, and the horizon never moves back), so every
 * such event is after it. Adding the checkpoint's row comparison made the index scan start at the
 * checkpoint and walk the whole backlog on every batch (seen as a slower catch-up).
 */
const READ_BATCH_SQL: PreparedStatement = {
  name: 'ledger_read_batch_v3',
  text: `SELECT h.held_back, e.* FROM
           (SELECT EXISTS (
              SELECT 1 FROM events
              WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())) AS held_back) h
           LEFT JOIN LATERAL (
             SELECT ${EVENT_COLUMNS} FROM events
             WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
               AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY transaction_id, position
             LIMIT $3) e ON true
         ORDER BY e.transaction_id, e.position`,
};

/**
 * Checks the expected version and inserts every event in one statement (one round trip):
 * the current version is read in the same statement, and UNIQUE(stream_id, version) turns a race
 * between two writers that read the same version into a unique violation for the later one.
 */
const APPEND_SQL: PreparedStatement = {
  name: 'ledger_event_store_append_v1',
  text: `
WITH current_version AS (
  SELECT coalesce(max(version), 0) AS version FROM events WHERE stream_id = $1
), appended AS (
  INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
  SELECT $1, current_version.version + e.ordinality, e.value->>'type', (e.value->>'schemaVersion')::int,
         (e.value->>'eventId')::uuid, e.value->'data', e.value->'metadata'
  FROM current_version, jsonb_array_elements($2::jsonb) WITH ORDINALITY AS e(value, ordinality)
  WHERE $3::int < 0 OR current_version.version = $3::int
  ORDER BY e.ordinality
  RETURNING position, version, recorded_at, transaction_id
)
SELECT current_version.version AS current_version, appended.*
FROM current_version LEFT JOIN appended ON true
ORDER BY appended.version`,
};

const STREAM_VERSION_UNIQUE = 'events_stream_version_unique';
/** Raised by the events_guard_insert trigger: the stream's head was written by a younger transaction. */
const YOUNGER_STREAM_HEAD = 'LE001';

/** Two-int advisory lock namespace: ANY appends to one stream queue on (this, hashtext(stream_id)). */
const ANY_APPEND_LOCK = 7_345_002;

/** Thrown inside a transaction when a concurrent writer took the version; resolved after rollback. */
class StreamVersionTaken extends Error {
  constructor(
    readonly streamId: string,
    readonly expectedVersion: ExpectedVersion,
  ) {
    super(`Stream ${streamId}: version taken by a concurrent writer`);
  }
}

/**
 * The transaction an outer unit of work opened (EventStore.transaction), so that code it calls —
 * a command handler, the command runner — joins it instead of opening its own: e.g. an idempotency
 * key is stored in the same transaction as the events its request appended.
 */
const ambient = new AsyncLocalStorage<EventStoreTransaction>();
let savepoints = 0;

/** The manager of the ambient unit of work, if one is running (see EventStore.transaction). */
export function ambientManager(): EntityManager | undefined {
  return ambient.getStore()?.manager;
}

/** A unit of work on the store: appends made through it commit or roll back together. */
export class EventStoreTransaction {
  readonly appended: RecordedEvent[] = [];
  /**
   * The error of a statement of this unit of work that PostgreSQL refused: the transaction is aborted
   * and COMMIT would silently roll back, so it must not be reported as committed even if `work`
   * swallowed the error.
   */
  failure: unknown;

  constructor(
    readonly manager: EntityManager,
    private readonly registry: EventTypeRegistry,
    private readonly projections: ProjectionRegistry,
    private readonly clock: Clock,
  ) {}

  async append(streamId: string, events: readonly object[], options: AppendOptions): Promise<AppendResult> {
    if (events.length === 0) throw new RangeError('Nothing to append');
    if (options.eventIds && options.eventIds.length !== events.length) {
      throw new RangeError('eventIds must give one id per event');
    }
    const occurredAt = this.clock.now().toISOString();
    const toStore = events.map((event, index) => {
      const eventId = options.eventIds?.[index] ?? randomUUID();
      const definition = this.registry.definitionOf(event);
      const metadata: EventMetadata = {
        correlationId: options.metadata?.correlationId ?? eventId,
        causationId: options.metadata?.causationId ?? eventId,
        ...(options.metadata?.actor === undefined ? {} : { actor: options.metadata.actor }),
        occurredAt,
        eventId,
      };
      return { ...definition, eventId, data: this.registry.serialize(event), metadata, event };
    });

    const payload = JSON.stringify(toStore.map(({ event: _event, ...stored }) => stored));
    const rows = await this.insert(streamId, payload, options.expectedVersion);
    if (rows[0].position === null) {
      throw new WrongExpectedVersionError(streamId, options.expectedVersion, rows[0].current_version);
    }
    const recorded = rows.map((row, index): RecordedEvent => ({
      streamId,
      version: row.version,
      position: toSafeNumber(row.position!),
      type: toStore[index].type,
      schemaVersion: toStore[index].schemaVersion,
      data: toStore[index].event,
      metadata: toStore[index].metadata,
      recordedAt: row.recorded_at,
      transactionId: row.transaction_id,
    }));
    try {
      await this.projections.applyInline(recorded, this.manager);
    } catch (error) {
      this.failure ??= error;
      throw error;
    }
    this.appended.push(...recorded);
    const last = recorded[recorded.length - 1];
    return { streamId, version: last.version, position: last.position, events: recorded };
  }

  private async insert(streamId: string, payload: string, expected: ExpectedVersion) {
    const sqlExpectedVersion = toSqlExpectedVersion(expected);
    try {
      if (expected === ANY) {
        // Without a check, concurrent writers would all take the same next version and all but one
        // would lose on UNIQUE(stream_id, version); queue them on the stream instead. A separate
        // statement, so that the append below reads the version with a snapshot taken after the wait.
        await this.manager.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [ANY_APPEND_LOCK, streamId]);
      }
      return await prepared<{
        current_version: number;
        position: string | null;
        version: number;
        recorded_at: Date;
        transaction_id: string;
      }>(this.manager, APPEND_SQL, [streamId, payload, sqlExpectedVersion]);
    } catch (error) {
      // A pg error from the prepared statement, or TypeORM's wrapper of one.
      const { constraint, code } = (error instanceof QueryFailedError ? error.driverError : error) as {
        constraint?: string;
        code?: string;
      };
      const failure =
        constraint === STREAM_VERSION_UNIQUE
          ? new StreamVersionTaken(streamId, expected)
          : code === YOUNGER_STREAM_HEAD
            ? new UnitOfWorkConflict(streamId, 'its last event was written by a younger transaction')
            : error;
      this.failure ??= failure;
      throw failure;
    }
  }
}

@Injectable()
export class EventStore {
  constructor(
    private readonly dataSource: DataSource,
    private readonly registry: EventTypeRegistry,
    private readonly projections: ProjectionRegistry,
    private readonly eventBus: EventBus,
    private readonly clock: Clock,
    @Optional() @Inject(COMMAND_RUNNER_OPTIONS) private readonly commandOptions: CommandRunnerOptions = { maxAttempts: 10 },
  ) {}

  /** Appends atomically to one stream; with `ANY`, a race with another writer is retried. */
  async append(streamId: string, events: readonly object[], options: AppendOptions): Promise<AppendResult> {
    if (this.canAppendAlone(options)) return this.appendAlone(streamId, events, options);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.transaction((tx) => tx.append(streamId, events, options));
      } catch (error) {
        if (!(options.expectedVersion === ANY && error instanceof WrongExpectedVersionError && attempt < 5)) throw error;
      }
    }
  }

  /**
   * Outside any unit of work, at an exact expected version and with no inline projection to update,
   * an append is a single statement (APPEND_SQL), which PostgreSQL runs atomically as a transaction of
   * its own: BEGIN and COMMIT around it would only add two round trips (measured: docs/BENCHMARKS.md).
   * ANY needs its lock statement first; inline projections write in the append's transaction.
   */
  private canAppendAlone(options: AppendOptions): boolean {
    // A lease holder's append must run in a transaction: its fence is checked just before COMMIT.
    return (
      ambient.getStore() === undefined && options.expectedVersion !== ANY && !this.projections.hasInline() && currentFence() === undefined
    );
  }

  private async appendAlone(streamId: string, events: readonly object[], options: AppendOptions): Promise<AppendResult> {
    const alone = new EventStoreTransaction(this.dataSource.manager, this.registry, this.projections, this.clock);
    let result: AppendResult;
    try {
      result = await alone.append(streamId, events, options);
    } catch (error) {
      throw await this.asVersionConflict(error);
    }
    this.eventBus.publishAll(alone.appended.map((event) => event.data)); // committed: the statement returned
    return result;
  }

  /** A version taken by a concurrent writer becomes the typed conflict, with the stream's actual version. */
  private async asVersionConflict(error: unknown): Promise<unknown> {
    if (!(error instanceof StreamVersionTaken)) return error;
    return new WrongExpectedVersionError(error.streamId, error.expectedVersion, await this.streamVersion(error.streamId));
  }

  /**
   * Runs `work` in one PostgreSQL transaction. Events appended through `tx` are published on the
   * EventBus only after COMMIT succeeds, never on rollback. Called while another unit of work is
   * running (see `ambient`), `work` joins that transaction inside a SAVEPOINT instead: a failure rolls
   * back only what `work` did, and publishing waits for the outer COMMIT.
   *
   * A UnitOfWorkConflict (a lost race inside the unit of work, or a stream last written by a younger
   * transaction) rolls the whole transaction back and runs `work` again on a new one, which gets a
   * new, younger transaction id: never under a savepoint, whose transaction keeps its old id and
   * would list the stream out of version order (see migration 1764230400012). `work` must therefore
   * be safe to run again from the start (it is: everything it wrote was rolled back).
   */
  async transaction<T>(work: (tx: EventStoreTransaction) => Promise<T>): Promise<T> {
    const outer = ambient.getStore();
    if (outer) return this.nested(outer, work);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(work);
      } catch (error) {
        if (!(error instanceof UnitOfWorkConflict)) throw error;
        if (attempt >= this.commandOptions.maxAttempts) throw new ConcurrencyConflictError(error.streamId, attempt);
        // Full jitter, doubling: contenders on one stream spread out instead of colliding again.
        await sleep(Math.random() * Math.min(2 * 2 ** attempt, 250));
      }
    }
  }

  private async once<T>(work: (tx: EventStoreTransaction) => Promise<T>): Promise<T> {
    let tx: EventStoreTransaction | undefined;
    try {
      const result = await this.dataSource.transaction(async (manager) => {
        tx = new EventStoreTransaction(manager, this.registry, this.projections, this.clock);
        const result = await ambient.run(tx, () => work(tx!));
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows what work caught, unchanged
        if (tx.failure !== undefined) throw tx.failure; // work swallowed an error that aborted the transaction
        // Work of a projection's lease holder commits only while it holds the lease (see lease-fence.ts).
        await currentFence()?.verify(manager);
        return result;
      });
      this.eventBus.publishAll(tx!.appended.map((event) => event.data));
      return result;
    } catch (error) {
      throw await this.asVersionConflict(error);
    }
  }

  private async nested<T>(outer: EventStoreTransaction, work: (tx: EventStoreTransaction) => Promise<T>): Promise<T> {
    const savepoint = `event_store_${++savepoints}`;
    const appendedBefore = outer.appended.length;
    const failureBefore = outer.failure;
    await outer.manager.query(`SAVEPOINT ${savepoint}`);
    try {
      const result = await work(outer);
      if (outer.failure !== failureBefore) throw outer.failure;
      await outer.manager.query(`RELEASE SAVEPOINT ${savepoint}`);
      return result;
    } catch (error) {
      await outer.manager.query(`ROLLBACK TO SAVEPOINT ${savepoint}`);
      outer.appended.length = appendedBefore; // rolled back: never to be published
      outer.failure = failureBefore;
      throw await this.asVersionConflict(error);
    }
  }

  /** Reads join the ambient transaction when there is one (they see its own writes, and a unit of
   * work never needs a second pooled connection, which could exhaust the pool). */
  private get reader(): EntityManager {
    return ambient.getStore()?.manager ?? this.dataSource.manager;
  }

  /** The stream's current version; 0 when it does not exist. */
  async streamVersion(streamId: string): Promise<number> {
    const [row] = (await this.reader.query('SELECT coalesce(max(version), 0) AS version FROM events WHERE stream_id = $1', [
      streamId,
    ])) as Array<{ version: number }>;
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
    const found = await this.readSnapshot(streamId, snapshot, MAX_VERSION);
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
    const rows = (await this.reader.query(
      `SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version >= $2 AND version <= $3 ORDER BY version`,
      [streamId, range.fromVersion ?? 1, range.toVersion ?? MAX_VERSION],
    )) as StoredEventRow[];
    return rows.map((row) => toRecordedEvent(row, this.registry));
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
   * committed events beyond them are held back (as hasCommittedAfter), in one prepared statement.
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
   * Whether committed events exist after the checkpoint, including those readAll still holds back
   * because an older transaction is in flight. Such a transaction may append nothing (a projection's
   * batch, a lease renewal), so its end is not announced by NOTIFY: a reader that got nothing but sees
   * this true should look again shortly rather than wait for a notification.
   */
  async hasCommittedAfter(after: Checkpoint): Promise<boolean> {
    const [row] = (await this.dataSource.query(
      `SELECT EXISTS (SELECT 1 FROM events WHERE (transaction_id, position) > ($1::xid8, $2::bigint)) AS held`,
      [after.transactionId, after.position],
    )) as Array<{ held: boolean }>;
    return row.held;
  }

  /**
   * Every committed event after `after` (up to `until`, inclusive) in commit order, WITHOUT holding
   * back for transactions in flight. Only correct where the caller knows nothing relevant is in
   * flight: below a checkpoint a commit-safe reader already reached, or under a lock that keeps the
   * writers of a projection's tables out (the swap at the end of a rebuild).
   */
  async readCommitted(after: Checkpoint, until: Checkpoint | undefined, manager: EntityManager): Promise<RecordedEvent[]> {
    const rows = (await manager.query(
      `SELECT ${EVENT_COLUMNS} FROM events
       WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
         AND ($3::xid8 IS NULL OR (transaction_id, position) <= ($3::xid8, $4::bigint))
       ORDER BY transaction_id, position`,
      [after.transactionId, after.position, until?.transactionId ?? null, until?.position ?? null],
    )) as StoredEventRow[];
    return rows.map((row) => toRecordedEvent(row, this.registry));
  }
}
