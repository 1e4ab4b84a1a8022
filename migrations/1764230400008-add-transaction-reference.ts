import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Deposits and withdrawals gained a `reference` (event schema version 2). The read table gets the
 * column; rows written before are filled by rebuilding the projection (`npm run projections --
 * rebuild account-transactions`), which reads old events upcast with a null reference.
 */
export class AddTransactionReference1764230400008 implements MigrationInterface {
  name = 'AddTransactionReference1764230400008';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE account_transactions ADD COLUMN reference text`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE account_transactions DROP COLUMN reference`);
  }
}
