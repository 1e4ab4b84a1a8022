import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The event store: one insert-only table holding every event of every stream.
 * - position: global, increasing in insert order (a reader must still read in commit order, see
 *   transaction_id and EventStore.readAll);
 * - UNIQUE (stream_id, version): optimistic concurrency, two writers can never both take version n;
 * - event_id UNIQUE: a retried write with the same deterministic id is refused as a duplicate;
 * - triggers refuse UPDATE, DELETE and TRUNCATE for every role (ENABLE ALWAYS: even with
 *   session_replication_role = replica).
 */
export class CreateEventStore1764230400000 implements MigrationInterface {
  name = 'CreateEventStore1764230400000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE events (
        position       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        stream_id      text        NOT NULL CHECK (length(stream_id) BETWEEN 1 AND 255),
        version        integer     NOT NULL CHECK (version >= 1),
        type           text        NOT NULL CHECK (length(type) BETWEEN 1 AND 255),
        schema_version integer     NOT NULL DEFAULT 1 CHECK (schema_version >= 1),
        event_id       uuid        NOT NULL,
        data           jsonb       NOT NULL,
        metadata       jsonb       NOT NULL,
        recorded_at    timestamptz NOT NULL DEFAULT now(),
        transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
        CONSTRAINT events_stream_version_unique UNIQUE (stream_id, version),
        CONSTRAINT events_event_id_unique UNIQUE (event_id)
      )`);
    await queryRunner.query(`CREATE INDEX events_commit_order_idx ON events (transaction_id, position)`);
    await queryRunner.query(`
      CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'the event store is append-only: % on table "events" is not allowed', TG_OP
          USING ERRCODE = 'restrict_violation',
                HINT = 'Events are immutable facts. Append a new event that corrects or compensates instead.';
      END
      $$`);
    await queryRunner.query(`
      CREATE TRIGGER events_refuse_update_delete BEFORE UPDATE OR DELETE ON events
      FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change()`);
    await queryRunner.query(`
      CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events
      FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change()`);
    await queryRunner.query(`ALTER TABLE events ENABLE ALWAYS TRIGGER events_refuse_update_delete`);
    await queryRunner.query(`ALTER TABLE events ENABLE ALWAYS TRIGGER events_refuse_truncate`);
    await queryRunner.query(`REVOKE UPDATE, DELETE, TRUNCATE ON events FROM PUBLIC`);
  }

  async down(): Promise<void> {
    throw new Error('The event store is never dropped by a migration: its events are the source of truth.');
  }
}
