import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * State of the projection engine:
 * - projection_checkpoints: one row per projection: where it stands in the log (commit order:
 *   transaction id, position), its status and last failure, the lease that makes one process its
 *   runner, and the progress of a rebuild in the background;
 * - projection_skips: every event an operator chose to skip, with the error that made it fail;
 * - a statement-level trigger that NOTIFYs runners when events are appended (delivered at COMMIT).
 */
export class CreateProjectionCheckpoints1764230400002 implements MigrationInterface {
  name = 'CreateProjectionCheckpoints1764230400002';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE projection_checkpoints (
        name                    text        PRIMARY KEY,
        transaction_id          xid8        NOT NULL DEFAULT '0',
        position                bigint      NOT NULL DEFAULT 0,
        status                  text        NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'failed')),
        attempts                integer     NOT NULL DEFAULT 0,
        last_error              text,
        failed_position         bigint,
        failed_at               timestamptz,
        lease_owner             text,
        lease_expires_at        timestamptz,
        rebuild_status          text        CHECK (rebuild_status IN ('requested', 'running')),
        rebuild_transaction_id  xid8,
        rebuild_position        bigint,
        rebuild_events_applied  bigint,
        rebuild_requested_at    timestamptz,
        rebuild_completed_at    timestamptz,
        updated_at              timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(`
      CREATE TABLE projection_skips (
        id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        projection text        NOT NULL,
        position   bigint      NOT NULL,
        event_type text        NOT NULL,
        error      text,
        skipped_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(`
      CREATE FUNCTION events_notify_appended() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('events_appended', '');
        RETURN NULL;
      END
      $$`);
    await queryRunner.query(`
      CREATE TRIGGER events_notify_appended AFTER INSERT ON events
      FOR EACH STATEMENT EXECUTE FUNCTION events_notify_appended()`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TRIGGER events_notify_appended ON events`);
    await queryRunner.query(`DROP FUNCTION events_notify_appended()`);
    await queryRunner.query(`DROP TABLE projection_skips`);
    await queryRunner.query(`DROP TABLE projection_checkpoints`);
  }
}
