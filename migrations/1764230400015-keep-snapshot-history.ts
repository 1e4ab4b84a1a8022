import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Snapshots become a history: one row per interval crossing (stream, schema version, version)
 * instead of the newest per stream, so time travel to an old point starts from the newest snapshot
 * at or before it rather than from the first event. The primary key serves both reads as one
 * backward index step: loading an aggregate (the newest) and time travel (the newest at or before a
 * version). Rows are immutable facts about a stream's state at a version; still only a cache:
 * deleting any of them changes no answer.
 *
 * The query side (ledger_query) may now read snapshots: time travel runs there. A snapshot is the
 * fold of events ledger_query may already read in full (SELECT on events), so this discloses
 * nothing new; the alternative — time travel reading the command side's table through the command
 * connection — would put query load on the command side's pool and break the separation.
 */
export class KeepSnapshotHistory1764230400015 implements MigrationInterface {
  name = 'KeepSnapshotHistory1764230400015';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE snapshots DROP CONSTRAINT snapshots_pkey`);
    await queryRunner.query(`ALTER TABLE snapshots ADD CONSTRAINT snapshots_pkey PRIMARY KEY (stream_id, schema_version, version)`);
    await queryRunner.query(`
      DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ledger_query') THEN
          GRANT SELECT ON snapshots TO ledger_query;
        END IF;
      END $$`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ledger_query') THEN
          REVOKE SELECT ON snapshots FROM ledger_query;
        END IF;
      END $$`);
    // Back to the newest per stream (a cache: dropping the others loses nothing).
    await queryRunner.query(`
      DELETE FROM snapshots s WHERE EXISTS (
        SELECT 1 FROM snapshots newer WHERE newer.stream_id = s.stream_id
          AND (newer.version, newer.schema_version) > (s.version, s.schema_version))`);
    await queryRunner.query(`ALTER TABLE snapshots DROP CONSTRAINT snapshots_pkey`);
    await queryRunner.query(`ALTER TABLE snapshots ADD CONSTRAINT snapshots_pkey PRIMARY KEY (stream_id)`);
  }
}
