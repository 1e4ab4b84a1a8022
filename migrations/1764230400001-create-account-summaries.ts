import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Read table of the accounts feature: one row per account, kept by the account-summary projection. */
export class CreateAccountSummaries1764230400001 implements MigrationInterface {
  name = 'CreateAccountSummaries1764230400001';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE account_summaries (
        id              uuid        PRIMARY KEY,
        owner_name      text        NOT NULL,
        currency        char(3)     NOT NULL,
        balance         bigint      NOT NULL CHECK (balance >= 0),
        status          text        NOT NULL CHECK (status IN ('open', 'closed')),
        version         integer     NOT NULL,
        opened_at       timestamptz NOT NULL,
        updated_at      timestamptz NOT NULL,
        opened_position bigint      NOT NULL UNIQUE,
        last_position   bigint      NOT NULL
      )`);
    await queryRunner.query(`CREATE INDEX account_summaries_owner_idx ON account_summaries (owner_name, opened_position)`);
    await queryRunner.query(`CREATE INDEX account_summaries_status_idx ON account_summaries (status, opened_position)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE account_summaries`);
  }
}
