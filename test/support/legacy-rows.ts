import type { DataSource } from 'typeorm';

export interface LegacyRow {
  readonly streamId: string;
  readonly version: number;
  readonly type: string;
  readonly schemaVersion: number;
  readonly eventId: string;
  readonly data: object;
  readonly metadata: object;
  /** ISO instant written as recorded_at, as rows stored before migration …010 can have it. */
  readonly recordedAt: string;
}

/**
 * Writes events the way rows stored by an older version of the service can look (recorded_at not in
 * version order), as the owner: today the events_guard_insert trigger sets recorded_at itself on
 * every INSERT, so it is disabled for this one transaction (the owner may; no other role can), and
 * the position is drawn from the store's own sequence as the trigger would.
 */
export async function insertLegacyRows(dataSource: DataSource, rows: readonly LegacyRow[]): Promise<void> {
  await dataSource.transaction(async (manager) => {
    await manager.query('ALTER TABLE events DISABLE TRIGGER events_guard_insert');
    for (const row of rows) {
      await manager.query(
        `INSERT INTO events (position, stream_id, version, type, schema_version, event_id, data, metadata, recorded_at)
         VALUES (nextval('events_position_seq'), $1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8)`,
        [
          row.streamId,
          row.version,
          row.type,
          row.schemaVersion,
          row.eventId,
          JSON.stringify(row.data),
          JSON.stringify(row.metadata),
          row.recordedAt,
        ],
      );
    }
    await manager.query('ALTER TABLE events ENABLE ALWAYS TRIGGER events_guard_insert');
  });
}
