import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Least privilege: three group roles (NOLOGIN) that login users are made members of, one per side.
 * - ledger_command: appends and reads events (never UPDATE or DELETE them: no grant, and the
 *   append-only triggers besides), and writes what a command's transaction writes (idempotency keys,
 *   snapshots; a feature with an inline projection grants it that projection's tables);
 * - ledger_query: reads only — the read tables, the event log (history, feeds, time travel) and the
 *   projections' checkpoints (read-your-writes, status);
 * - ledger_projector: reads events, writes the read tables, the checkpoints and skips, and may create
 *   the schemas a rebuild builds its fresh copies in.
 * Roles are cluster-wide: created only if missing, and only when the migrating user may create roles
 * (otherwise a notice says so and the grants wait for a DBA to create them and run this again).
 * Grants are per database. A later migration that adds a table grants it to the roles that need it.
 */
const ROLES = ['ledger_command', 'ledger_query', 'ledger_projector'] as const;

const GRANTS: Record<(typeof ROLES)[number], readonly string[]> = {
  ledger_command: [
    'GRANT SELECT, INSERT ON events TO ledger_command',
    'GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys, snapshots TO ledger_command',
  ],
  ledger_query: [
    'GRANT SELECT ON events, account_summaries, account_transactions, transfers, projection_checkpoints, projection_skips TO ledger_query',
  ],
  ledger_projector: [
    'GRANT SELECT ON events TO ledger_projector',
    'GRANT SELECT, INSERT, UPDATE, DELETE ON account_summaries, account_transactions, transfers TO ledger_projector',
    'GRANT SELECT, INSERT, UPDATE ON projection_checkpoints TO ledger_projector',
    'GRANT SELECT, INSERT ON projection_skips TO ledger_projector',
    // Identity columns of read tables: a rebuild moves their sequences past the copied rows.
    'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %1$I TO ledger_projector',
    // A rebuild writes its fresh copy in a schema of its own.
    'GRANT CREATE ON DATABASE %2$I TO ledger_projector',
  ],
};

export class CreateRoles1764230400011 implements MigrationInterface {
  name = 'CreateRoles1764230400011';

  async up(queryRunner: QueryRunner): Promise<void> {
    for (const role of ROLES) {
      // Two databases of one cluster migrating at once (parallel test files) may race to create a
      // role: the loser's unique_violation means the role is there.
      await queryRunner.query(`
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${role}') THEN
            IF (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
              CREATE ROLE ${role} NOLOGIN;
            ELSE
              RAISE NOTICE 'role ${role} is missing and % may not create roles: its grants are skipped', current_user;
            END IF;
          END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$`);
      const statements = ['GRANT CONNECT ON DATABASE %2$I TO %3$I', 'GRANT USAGE ON SCHEMA %1$I TO %3$I', ...GRANTS[role]];
      await queryRunner.query(`
        DO $$ BEGIN
          IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${role}') THEN
            ${statements.map((statement) => `EXECUTE format('${statement}', current_schema(), current_database(), '${role}');`).join('\n            ')}
          END IF;
        END $$`);
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const role of ROLES) {
      await queryRunner.query(`
        DO $$ BEGIN
          IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${role}') THEN
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM ${role}', current_schema());
            EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM ${role}', current_schema());
            EXECUTE format('REVOKE ALL ON SCHEMA %I FROM ${role}', current_schema());
            EXECUTE format('REVOKE ALL ON DATABASE %I FROM ${role}', current_database());
          END IF;
        END $$`);
    }
  }
}
