import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Transfers now settle their source (accounts.TransferSettled) once the target is credited. Transfers
 * completed before have no settlement, so their money would look in flight for ever. Replaying the
 * transfer process from the start of the log settles them: every step is idempotent, and a transfer
 * found completed gets the missing settlement. (No row yet on a new database: nothing to do.)
 */
export class ReplayTransferProcess1764230400009 implements MigrationInterface {
  name = 'ReplayTransferProcess1764230400009';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `UPDATE projection_checkpoints SET transaction_id = '0', position = 0, status = 'running', attempts = 0
       WHERE name = 'transfer-process'`,
    );
  }

  async down(): Promise<void> {
    // Nothing to undo: a replay changes nothing a second time.
  }
}
