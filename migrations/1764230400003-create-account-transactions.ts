import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Read table of an account's money movements (deposits, withdrawals, later transfer legs). */
export class CreateAccountTransactions1764230400003 implements MigrationInterface {
  name = 'CreateAccountTransactions1764230400003';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE account_transactions (
        position      bigint      PRIMARY KEY,
        account_id    uuid        NOT NULL,
        type          text        NOT NULL,
        amount        bigint      NOT NULL CHECK (amount > 0),
        balance_after bigint      NOT NULL CHECK (balance_after >= 0),
        occurred_at   timestamptz NOT NULL,
        transfer_id   uuid
      )`);
    await queryRunner.query(`CREATE INDEX account_transactions_account_idx ON account_transactions (account_id, position DESC)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE account_transactions`);
  }
}
