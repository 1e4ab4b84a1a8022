import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Least privilege: three group roles (NOLOGIN) that login users are made members of, one per side.
 * - ledger_command: appends and reads events (never UPDATE or DELETE them), and writes what a
 *   command's transaction writes (idempotency keys, snapshots, and the tables of inline projections);
 * - ledger_query: reads only — the read tables, the event log (history, feeds, time travel) and the
 *   projections' checkpoints (read-your-writes);
 * - ledger_projector: reads events, writes the read tables, the checkpoints and skips, and may create
 *   the schemas a rebuild builds its fresh copies in.
 * Roles are cluster-wide, so they are created only if missing; grants are per database. A later
 * migration that adds a table grants it to the roles that need it (see README, "Least privilege").
 */
export class CreateRoles1764230400011 implements MigrationInterface {
  name = 'CreateRoles1764230400011';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      DO $$
      DECLARE role text;
      BEGIN
        FOREACH role IN ARRAY ARRAY['ledger_command', 'ledger_query', 'ledger_projector'] LOOP
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', role);
          END IF;
        END LOOP;
      END
      $$`);
    await queryRunner.query(`
      DO $$ BEGIN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO ledger_command, ledger_query, ledger_projector', current_schema());
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO ledger_command, ledger_query, ledger_projector', current_database());
        EXECUTE format('GRANT CREATE ON DATABASE %I TO ledger_projector', current_database());
      END $$`);
    // Command side.
    await queryRunner.query(`GRANT SELECT, INSERT ON events TO ledger_command`);
    await queryRunner.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys, snapshots TO ledger_command`);
    // Query side.
    await queryRunner.query(
      `GRANT SELECT ON account_summaries, account_transactions, transfers, events, projection_checkpoints TO ledger_query`,
    );
    // Projector.
    await queryRunner.query(`GRANT SELECT ON events TO ledger_projector`);
    await queryRunner.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON account_summaries, account_transactions, transfers TO ledger_projector`);
    await queryRunner.query(`GRANT SELECT, INSERT, UPDATE ON projection_checkpoints TO ledger_projector`);
    await queryRunner.query(`GRANT SELECT, INSERT ON projection_skips TO ledger_projector`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const role of ['ledger_command', 'ledger_query', 'ledger_projector']) {
      await queryRunner.query(`REVOKE ALL ON ALL TABLES IN SCHEMA ${await this.schema(queryRunner)} FROM ${role}`);
    }
  }

  private async schema(queryRunner: QueryRunner): Promise<string> {
    const [{ schema }] = (await queryRunner.query('SELECT current_schema() AS schema')) as Array<{ schema: string }>;
    return `"${schema}"`;
  }
}
