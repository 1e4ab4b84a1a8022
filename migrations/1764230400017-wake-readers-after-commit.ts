import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Drops the statement trigger that sent NOTIFY events_appended from inside every append transaction
 * (migration 002). PostgreSQL lets only one notifying transaction commit at a time (it holds a
 * database-wide lock on the notification queue from pre-commit through commit), so the trigger made
 * every append commit in turn and kept appends flat from 8 clients up (issue 14, docs/BENCHMARKS.md).
 * The appending instance now wakes its own readers after COMMIT and the other instances with a
 * throttled NOTIFY of its own, outside the append's transaction (src/event-sourcing/event-notifier.ts).
 * Rows inserted behind the service's back wake nobody any more: runners find them by polling.
 */
export class WakeReadersAfterCommit1764230400017 implements MigrationInterface {
  name = 'WakeReadersAfterCommit1764230400017';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TRIGGER IF EXISTS events_notify_appended ON events`);
    await queryRunner.query(`DROP FUNCTION IF EXISTS events_notify_appended()`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
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
}
