import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Snapshots of aggregate state, a cache only: the newest per stream, with the schema version of the
 * state's shape. Deleting every row changes no answer (loading falls back to the full stream).
 */
export class CreateSnapshots1764230400007 implements MigrationInterface {
  name = 'CreateSnapshots1764230400007';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE snapshots (
        stream_id      text        PRIMARY KEY,
        aggregate      text        NOT NULL,
        schema_version integer     NOT NULL,
        version        integer     NOT NULL CHECK (version >= 1),
        position       bigint      NOT NULL,
        state          jsonb       NOT NULL,
        created_at     timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE snapshots`);
  }
}
