import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Read table of transfers, and an index that finds every event of one correlation (a transfer's
 * whole chain: its own stream and both accounts' legs).
 */
export class CreateTransfers1764230400005 implements MigrationInterface {
  name = 'CreateTransfers1764230400005';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE transfers (
        id                 uuid        PRIMARY KEY,
        from_account_id    uuid        NOT NULL,
        to_account_id      uuid        NOT NULL,
        amount             bigint      NOT NULL CHECK (amount > 0),
        currency           char(3)     NOT NULL,
        reference          text,
        status             text        NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
        failure_code       text,
        failure_reason     text,
        refunded           boolean     NOT NULL DEFAULT false,
        requested_at       timestamptz NOT NULL,
        updated_at         timestamptz NOT NULL,
        completed_at       timestamptz,
        requested_position bigint      NOT NULL UNIQUE,
        last_position      bigint      NOT NULL
      )`);
    await queryRunner.query(`CREATE INDEX transfers_from_idx ON transfers (from_account_id, requested_position)`);
    await queryRunner.query(`CREATE INDEX transfers_to_idx ON transfers (to_account_id, requested_position)`);
    await queryRunner.query(`CREATE INDEX events_correlation_idx ON events ((metadata->>'correlationId'), position)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX events_correlation_idx`);
    await queryRunner.query(`DROP TABLE transfers`);
  }
}
