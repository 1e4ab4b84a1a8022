import type { EntityManager } from 'typeorm';
import { QueryFailedError } from 'typeorm';
import {
  type EventToStore,
  type InsertedRow,
  NO_PREVIOUS_VERSION,
  STREAM_VERSION_UNIQUE,
  YOUNGER_STREAM_HEAD,
} from './event-store-transaction.js';
import { type ExpectedVersion, MAX_STREAM_VERSION, toSqlExpectedVersion } from './expected-version.js';
import { type PreparedStatement, prepared } from './sql.js';

/**
 * One event at an exact expected version, as a plain INSERT of version expected + 1: no CTE, no
 * jsonb array to unpack, no read of the stream's version first. The database refuses every wrong
 * expectation on its own: a version taken (behind, or NO_STREAM on an existing stream) is a unique
 * violation of (stream_id, version), and a version ahead of the stream follows no version, which
 * the insert trigger of migration 012 refuses (LE002). Measured with pgbench at 1 client, the
 * checked append (APPEND_SQL) costs about 1.2 × this statement's server time (docs/BENCHMARKS.md).
 */
const LONE_EVENT_APPEND_SQL: PreparedStatement = {
  name: 'ledger_event_store_lone_event_append_v1',
  text: `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
VALUES ($1, $2, $3, $4, $5::uuid, $6::jsonb, $7::jsonb)
RETURNING position, version, recorded_at, transaction_id`,
};

/**
 * Whether `appendLoneEvent` can write this append (one event, an exact expected version whose next
 * version fits the column: at MAX_STREAM_VERSION, version + 1 would be "integer out of range", a database
 * error, where the checked append answers a WrongExpectedVersionError; found in review).
 */
export function isLoneEvent(toStore: readonly EventToStore[], expectedVersion: ExpectedVersion): boolean {
  const expected = toSqlExpectedVersion(expectedVersion);
  return toStore.length === 1 && expected >= 0 && expected < MAX_STREAM_VERSION;
}

/**
 * Writes the append as one statement that commits on its own (never inside a transaction: a refused
 * INSERT would abort it). Answers the inserted row, or undefined when the database refused the
 * version: the caller then runs the checked append, which tells a conflict (with the stream's actual
 * version) from a version that has meanwhile become right, e.g. a stream head committed by a younger
 * transaction an instant after this one began (LE001), which the checked append on a new transaction
 * writes. A duplicate event id is answered the same way: PostgreSQL checks a row's unique indexes in
 * OID order, so when the event id's index comes first (after a REINDEX CONCURRENTLY of the version's,
 * or a restored dump) a retry at a version taken meanwhile fails on the event id, where the checked
 * append, which reads the version first, answers a WrongExpectedVersionError; when the version is
 * right, the checked append fails on the event id as before (found in review). Any other failure (a
 * lost connection) is thrown as it is.
 */
export async function appendLoneEvent(
  manager: EntityManager,
  streamId: string,
  [event]: readonly EventToStore[],
  expectedVersion: ExpectedVersion,
): Promise<InsertedRow | undefined> {
  const version = toSqlExpectedVersion(expectedVersion) + 1;
  const values = [
    streamId,
    version,
    event.type,
    event.schemaVersion,
    event.eventId,
    JSON.stringify(event.data),
    JSON.stringify(event.metadata),
  ];
  try {
    const [row] = await prepared<InsertedRow>(manager, LONE_EVENT_APPEND_SQL, values);
    return row;
  } catch (error) {
    if (isVersionRefusal(error)) return undefined;
    throw error;
  }
}

const EVENT_ID_UNIQUE = 'events_event_id_unique';

function isVersionRefusal(error: unknown): boolean {
  if (!(error instanceof QueryFailedError)) return false;
  const { constraint, code } = error.driverError as { constraint?: string; code?: string };
  return (
    constraint === STREAM_VERSION_UNIQUE || constraint === EVENT_ID_UNIQUE || code === NO_PREVIOUS_VERSION || code === YOUNGER_STREAM_HEAD
  );
}
