import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { type EntityManager, QueryFailedError } from 'typeorm';
import type { Clock } from './clock.js';
import type { CommandMetadata } from './command-metadata.js';
import { UnitOfWorkConflict, WrongExpectedVersionError } from './errors.js';
import type { EventTypeRegistry } from './event-type.registry.js';
import type { LeaseFence } from './lease-fence.js';
import { ANY, type ExpectedVersion, toSqlExpectedVersion } from './expected-version.js';
import type { ProjectionRegistry } from './projection.registry.js';
import type { EventMetadata, RecordedEvent } from './recorded-event.js';
import { type PreparedStatement, prepared } from './sql.js';
import { toSafeNumber } from './stored-event.row.js';
import { settledTransactionStatus } from './transaction-status.js';
import { activeTraceContext } from '../observability/spans.js';

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

export const STREAM_VERSION_UNIQUE = 'events_stream_version_unique';
/** Raised by the events_guard_insert trigger: the stream's head was written by a younger transaction. */
export const YOUNGER_STREAM_HEAD = 'LE001';
/** Raised by the events_guard_insert trigger: the version inserted follows no version of its stream. */
export const NO_PREVIOUS_VERSION = 'LE002';

/** Two-int advisory lock namespace: ANY appends to one stream queue on (this, hashtext(stream_id)). */
const ANY_APPEND_LOCK = 7_345_002;

/** Thrown inside a transaction when a concurrent writer took the version; resolved after rollback. */
export class StreamVersionTaken extends Error {
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
export const ambient = new AsyncLocalStorage<EventStoreTransaction>();
/** Names of the savepoints nested units of work run in: unique in this process. */
export const savepointName = (() => {
  let savepoints = 0;
  return (): string => `event_store_${++savepoints}`;
})();

/** The manager of the ambient unit of work, if one is running (see EventStore.transaction). */
export function ambientManager(): EntityManager | undefined {
  return ambient.getStore()?.manager;
}

/** An event ready to be written: its stored form (type, schema version, id, data, metadata) and the instance. */
export interface EventToStore {
  readonly type: string;
  readonly schemaVersion: number;
  readonly eventId: string;
  readonly data: unknown;
  readonly metadata: EventMetadata;
  readonly event: object;
}

/** A row an append statement returns per inserted event (bigint position as a string). */
export interface InsertedRow {
  readonly position: string | null;
  readonly version: number;
  readonly recorded_at: Date;
  readonly transaction_id: string;
}

/**
 * Checks the call and gives each event its id and metadata; nothing is written. Shared by the unit
 * of work and the group commit (group-commit-appender.ts), so both store the same rows.
 */
export function prepareEvents(
  registry: EventTypeRegistry,
  clock: Clock,
  events: readonly object[],
  options: AppendOptions,
): EventToStore[] {
  if (events.length === 0) throw new RangeError('Nothing to append');
  if (options.eventIds && options.eventIds.length !== events.length) {
    throw new RangeError('eventIds must give one id per event');
  }
  const occurredAt = clock.now().toISOString();
  const traceContext = activeTraceContext();
  return events.map((event, index) => {
    const eventId = options.eventIds?.[index] ?? randomUUID();
    const definition = registry.definitionOf(event);
    const metadata: EventMetadata = {
      correlationId: options.metadata?.correlationId ?? eventId,
      causationId: options.metadata?.causationId ?? eventId,
      ...(options.metadata?.actor === undefined ? {} : { actor: options.metadata.actor }),
      occurredAt,
      eventId,
      // W3C traceparent/tracestate of the append (none when tracing is off): whoever handles the
      // event later continues its trace (observability/event-handling.ts).
      ...traceContext,
    };
    return { ...definition, eventId, data: registry.serialize(event), metadata, event };
  });
}

/** The stored form of the events (what the append statements read from jsonb), without the instances. */
export function storedEvents(toStore: readonly EventToStore[]): Array<Omit<EventToStore, 'event'>> {
  return toStore.map(({ event: _event, ...stored }) => stored);
}

function storedPayload(toStore: readonly EventToStore[]): string {
  return JSON.stringify(storedEvents(toStore));
}

/** The recorded events of one append, from the rows its statement returned (in version order). */
export function recordedEvents(streamId: string, toStore: readonly EventToStore[], rows: readonly InsertedRow[]): RecordedEvent[] {
  return rows.map((row, index): RecordedEvent => ({
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
}

/** How a unit of work treats the appends made inside it (EventStore.transaction). */
export interface UnitOfWorkOptions {
  /**
   * True: an append at an exact expected version made inside it (a command's, through the command
   * bus) joins its transaction as one statement, without a SAVEPOINT of its own (two round trips
   * fewer per append). The price: such an append cannot fail alone. A version taken by a concurrent
   * writer rolls the whole unit of work back and runs it again (UnitOfWorkConflict), and any other
   * failed statement fails the whole unit of work. For work that retries from the start anyway and
   * handles no append failure itself: a process manager's step. A refusal (a domain error thrown by
   * a decision, before any statement) is unaffected: the work may catch it and record it.
   */
  readonly flat?: boolean;
}

/** A unit of work on the store: appends made through it commit or roll back together. */
export class EventStoreTransaction {
  readonly appended: RecordedEvent[] = [];
  /**
   * Work to do once this unit of work has committed, never if it rolls back: snapshots of the
   * states its appends led to (a cache of committed state; written inside, each would cost a
   * savepoint and hold the transaction, and with it every async projection's view, while it waits).
   */
  readonly afterCommit: Array<() => Promise<void>> = [];
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
    readonly options: UnitOfWorkOptions = {},
    /** The lease fence the unit of work was opened under, which its COMMIT verifies. */
    readonly fence?: LeaseFence,
  ) {}

  /**
   * Where PostgreSQL says this unit of work's transaction is, read from the connection's
   * ReadyForQuery once the server has sent it (see transaction-status.ts), no round trip: 'open';
   * 'aborted' when a statement failed, whoever sent it (the work's own query, a read, a fence check)
   * and whether or not its error was caught; 'ended' when the work itself ended it (its own ROLLBACK
   * or COMMIT: a COMMIT sent after that commits nothing); 'unknown' off node-postgres.
   */
  async status(): Promise<'open' | 'aborted' | 'ended' | 'unknown'> {
    const { queryRunner } = this.manager as { queryRunner?: { databaseConnection?: unknown } };
    const status = await settledTransactionStatus(queryRunner?.databaseConnection);
    return status === 'T' ? 'open' : status === 'E' ? 'aborted' : status === 'I' ? 'ended' : 'unknown';
  }

  async append(streamId: string, events: readonly object[], options: AppendOptions): Promise<AppendResult> {
    return this.appendPrepared(streamId, prepareEvents(this.registry, this.clock, events, options), options.expectedVersion);
  }

  /** Appends events already given their ids and metadata (prepareEvents). */
  async appendPrepared(streamId: string, toStore: readonly EventToStore[], expectedVersion: ExpectedVersion): Promise<AppendResult> {
    const rows = await this.insert(streamId, storedPayload(toStore), expectedVersion);
    if (rows[0].position === null) {
      throw new WrongExpectedVersionError(streamId, expectedVersion, rows[0].current_version);
    }
    const recorded = recordedEvents(streamId, toStore, rows);
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
