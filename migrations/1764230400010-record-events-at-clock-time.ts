import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * recorded_at was now(), the start of the writing transaction: a unit of work that began before a
 * concurrent append to the same stream, and appended after it, recorded version n+1 earlier than
 * version n, so "the stream as of an instant" could fold a state that never existed. clock_timestamp()
 * is read at the insert itself; version n+1 is inserted only after version n committed, so within a
 * stream recorded_at now grows with the version. (Existing rows are left as they were: the store is
 * append-only.)
 */
export class RecordEventsAtClockTime1764230400010 implements MigrationInterface {
  name = 'RecordEventsAtClockTime1764230400010';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE events ALTER COLUMN recorded_at SET DEFAULT clock_timestamp()`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE events ALTER COLUMN recorded_at SET DEFAULT now()`);
  }
}
