import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * projection_checkpoints.completed_ahead (issue 17 review): the positions of the events a process
 * manager's lanes completed past its checkpoint (the checkpoint only takes the completed prefix of a
 * batch). Written with the checkpoint, under the lease's fence, and read by every later holder — after
 * a retry, a restart or a takeover — which skips them instead of reacting again. Without it, the NATS
 * relay republished those events, and a broker stores a republish as a second message once its
 * duplicate window (2 minutes) has passed. Always empty for projections with tables (a batch is one
 * transaction there).
 */
export class RememberReactionsAhead1764230400019 implements MigrationInterface {
  name = 'RememberReactionsAhead1764230400019';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE projection_checkpoints ADD COLUMN completed_ahead bigint[] NOT NULL DEFAULT '{}'`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE projection_checkpoints DROP COLUMN completed_ahead`);
  }
}
