import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Idempotency-Key records: written in the same transaction as the events the request appended, so a
 * key is recorded if and only if its request took effect. Expired rows are deleted periodically.
 */
export class CreateIdempotencyKeys1764230400004 implements MigrationInterface {
  name = 'CreateIdempotencyKeys1764230400004';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE idempotency_keys (
        key          text        PRIMARY KEY,
        fingerprint  text        NOT NULL,
        status_code  integer     NOT NULL,
        headers      jsonb       NOT NULL,
        body         jsonb,
        created_at   timestamptz NOT NULL DEFAULT now(),
        expires_at   timestamptz NOT NULL
      )`);
    await queryRunner.query(`CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE idempotency_keys`);
  }
}
