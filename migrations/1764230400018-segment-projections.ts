import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Segmented projections and process managers (issue 15).
 * - projection_checkpoints gains `projection`, `segment` and `segments`: a projection's work is split
 *   into `segments` rows, one per segment, each with its own checkpoint and lease. The primary key
 *   `name` stays the row's key (what leases, ledger_fence and every fenced statement use, unchanged):
 *   the projection's name for a single segment, `<name>#<segment>/<segments>` otherwise, so a runner
 *   of an older layout never finds a row of a newer one. Existing rows become segment 0 of 1, with
 *   nothing to rebuild.
 * - projection_instances: a heartbeat row per running engine, with the projections it runs, so every
 *   instance knows how many share a projection's segments (a fair share is ceil(segments / live instances)), including one that holds none yet.
 * The projector may now delete checkpoint rows: a change of segment count replaces a layout's rows.
 */
const PROJECTOR_GRANTS = [
  'GRANT DELETE ON projection_checkpoints TO ledger_projector',
  'GRANT SELECT, INSERT, UPDATE, DELETE ON projection_instances TO ledger_projector',
];
const QUERY_GRANTS = ['GRANT SELECT ON projection_instances TO ledger_query'];

export class SegmentProjections1764230400018 implements MigrationInterface {
  name = 'SegmentProjections1764230400018';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      ALTER TABLE projection_checkpoints
        ADD COLUMN projection text,
        ADD COLUMN segment integer NOT NULL DEFAULT 0,
        ADD COLUMN segments integer NOT NULL DEFAULT 1`);
    await queryRunner.query(`UPDATE projection_checkpoints SET projection = name`);
    await queryRunner.query(`
      ALTER TABLE projection_checkpoints
        ALTER COLUMN projection SET NOT NULL,
        ADD CONSTRAINT projection_checkpoints_segment_range CHECK (segments BETWEEN 1 AND 256 AND segment >= 0 AND segment < segments),
        ADD CONSTRAINT projection_checkpoints_segment_unique UNIQUE (projection, segments, segment)`);
    await queryRunner.query(`
      CREATE TABLE projection_instances (
        owner       text        PRIMARY KEY,
        projections text[]      NOT NULL,
        expires_at  timestamptz NOT NULL
      )`);
    await grant(queryRunner, 'ledger_projector', PROJECTOR_GRANTS);
    await grant(queryRunner, 'ledger_query', QUERY_GRANTS);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE projection_instances`);
    await queryRunner.query(`DELETE FROM projection_checkpoints WHERE segments <> 1`);
    await queryRunner.query(`
      ALTER TABLE projection_checkpoints
        DROP CONSTRAINT projection_checkpoints_segment_unique,
        DROP CONSTRAINT projection_checkpoints_segment_range,
        DROP COLUMN segments, DROP COLUMN segment, DROP COLUMN projection`);
  }
}

/** Roles may be missing (see CreateRoles1764230400011): grant only to those that exist. */
async function grant(queryRunner: QueryRunner, role: string, statements: readonly string[]): Promise<void> {
  await queryRunner.query(`
    DO $do$ BEGIN
      IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${role}') THEN
        ${statements.map((statement) => `EXECUTE '${statement}';`).join('\n        ')}
      END IF;
    END $do$`);
}
