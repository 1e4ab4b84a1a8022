import { randomUUID } from 'node:crypto';
import { type Queryable, rows } from './projection-fixtures.js';

/**
 * Events written the way the service wrote them before a schema change: the same columns as the
 * event store's append (stream_id, version, type, schema_version, event_id, data, metadata; position,
 * recorded_at and transaction_id by their defaults), with the old payload shape. Used to prove that
 * every reader sees old events in the current shape (upcasting) and that the service refuses to start
 * on events it cannot read at all.
 */
export interface LegacyEvent {
  readonly type: string;
  readonly schemaVersion: number;
  readonly data: Record<string, unknown>;
}

/** Inserts the events at the next versions of `streamId`, in one statement; their positions. */
export async function insertLegacyEvents(
  db: Queryable,
  streamId: string,
  events: readonly LegacyEvent[],
  actor = 'legacy-import',
): Promise<number[]> {
  const [{ version }] = await rows<{ version: number }>(
    db,
    'SELECT coalesce(max(version), 0)::int AS version FROM events WHERE stream_id = $1',
    [streamId],
  );
  const occurredAt = new Date().toISOString();
  const values: unknown[] = [];
  const tuples = events.map((event, index) => {
    const eventId = randomUUID();
    const metadata = { correlationId: eventId, causationId: eventId, actor, occurredAt, eventId };
    values.push(
      streamId,
      version + index + 1,
      event.type,
      event.schemaVersion,
      eventId,
      JSON.stringify(event.data),
      JSON.stringify(metadata),
    );
    const base = index * 7;
    return `($${base + 1}, $${base + 2}, $${base + 3}, $${base + 4}, $${base + 5}, $${base + 6}::jsonb, $${base + 7}::jsonb)`;
  });
  const inserted = await rows<{ position: string }>(
    db,
    `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata) VALUES ${tuples.join(', ')} RETURNING position`,
    values,
  );
  return inserted.map((row) => Number(row.position)).sort((a, b) => a - b);
}
