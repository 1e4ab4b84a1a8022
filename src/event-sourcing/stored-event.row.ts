import type { EventTypeRegistry } from './event-type.registry.js';
import type { EventMetadata, RecordedEvent } from './recorded-event.js';

/** The columns every read of the events table selects, in the shape `pg` returns them. */
export const EVENT_COLUMNS = 'position, stream_id, version, type, schema_version, data, metadata, recorded_at, transaction_id';

export interface StoredEventRow {
  position: string;
  stream_id: string;
  version: number;
  type: string;
  schema_version: number;
  data: object;
  metadata: EventMetadata;
  recorded_at: Date;
  transaction_id: string;
}

/** bigint columns arrive as strings; positions stay far below 2^53, and we check rather than assume. */
export function toSafeNumber(value: string | number): number {
  const number = Number(value);
  if (!Number.isSafeInteger(number)) throw new RangeError(`${value} is not a safe integer`);
  return number;
}

export function toRecordedEvent(row: StoredEventRow, registry: EventTypeRegistry): RecordedEvent {
  return {
    streamId: row.stream_id,
    version: row.version,
    position: toSafeNumber(row.position),
    type: row.type,
    // Readers get the current shape: data is upcast, and schemaVersion says which shape that is.
    schemaVersion: registry.currentSchemaVersion(row.type),
    data: registry.deserialize(row.type, row.schema_version, row.data),
    metadata: row.metadata,
    recordedAt: row.recorded_at,
    transactionId: row.transaction_id,
  };
}
