import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * GET /transfers/{id}/events pages through a transfer's chain (its own stream and both accounts'
 * legs: every such event names the transfer in data.transferId). Keyed on the caller-supplied
 * correlation id, a page read and discarded every other event that reused that id (found in review:
 * 20,002 rows for a page of 2); keyed on the transfer id, a page reads at most limit+1 rows of it.
 */
export class IndexTransferChains1764230400016 implements MigrationInterface {
  name = 'IndexTransferChains1764230400016';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE INDEX events_transfer_chain_idx ON events ((data->>'transferId'), position) WHERE data ? 'transferId'`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX events_transfer_chain_idx`);
  }
}
