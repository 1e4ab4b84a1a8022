import type { PreparedStatement } from './sql.js';

/**
 * Appends to several streams in one statement, so in one transaction and one commit (group commit):
 * $1 is a jsonb array of { streamId, expectedVersion (0 = no stream, n = exact), events }, one
 * stream at most once. Each stream's current version is read in the statement; only the appends
 * whose version matches are inserted, in input order, each stream's events in version order (so
 * positions follow the input, and the insert trigger of migration 012 sees each version follow the
 * previous one). Answers per append (n, 1-based input order) its current version and its inserted
 * rows, none when the version did not match. A race the statement cannot settle (a unique
 * violation, LE001, a duplicate event id) fails the whole statement: nothing of it is written.
 */
export const GROUP_APPEND_SQL: PreparedStatement = {
  name: 'ledger_event_store_group_append_v1',
  text: `
WITH input AS (
  SELECT a.ordinality AS n, a.value->>'streamId' AS stream_id, (a.value->>'expectedVersion')::int AS expected, a.value->'events' AS events
  FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS a(value, ordinality)
), current_version AS (
  SELECT input.*, (SELECT coalesce(max(version), 0) FROM events WHERE events.stream_id = input.stream_id) AS version
  FROM input
), appended AS (
  INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
  SELECT c.stream_id, c.version + e.ordinality, e.value->>'type', (e.value->>'schemaVersion')::int,
         (e.value->>'eventId')::uuid, e.value->'data', e.value->'metadata'
  FROM current_version AS c, jsonb_array_elements(c.events) WITH ORDINALITY AS e(value, ordinality)
  WHERE c.version = c.expected
  ORDER BY c.n, e.ordinality
  RETURNING stream_id, position, version, recorded_at, transaction_id
)
SELECT c.n, c.version AS current_version, a.position, a.version, a.recorded_at, a.transaction_id
FROM current_version AS c LEFT JOIN appended AS a ON a.stream_id = c.stream_id
ORDER BY c.n, a.version`,
};

export interface GroupAppendRow {
  /** 1-based index of the append in the input (bigint, as a string). */
  readonly n: string;
  readonly current_version: number;
  readonly position: string | null;
  readonly version: number;
  readonly recorded_at: Date;
  readonly transaction_id: string;
}
