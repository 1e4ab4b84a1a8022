import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * (type, schema_version) of every event: lets the start-up check list the stored schemas without
 * scanning the table, and lets the global feed filter by type.
 */
export class IndexEventTypes1764230400006 implements MigrationInterface {
  name = 'IndexEventTypes1764230400006';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE INDEX events_type_idx ON events (type, schema_version, position)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX events_type_idx`);
  }
}
