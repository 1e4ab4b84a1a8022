import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Least privilege that holds against a hostile role:
 * - No role but the owner creates schemas. With CREATE ON DATABASE, projector credentials could
 *   create a schema named after another login user, which PostgreSQL's default search_path
 *   ("$user", public) puts first: that user's unqualified SQL would then resolve to its tables.
 *   (Every connection of the service also pins its search_path now; this closes the door as well.)
 *   A rebuild no longer creates a schema: its fresh copies are tables in `<schema>_rebuild`, made
 *   here, owned by the owner, where only ledger_projector may create (and so drop its own) tables.
 * - Nobody but the owner creates objects in the main schema: PostgreSQL 15+ no longer grants CREATE
 *   on `public` to PUBLIC, older servers (and upgraded clusters) do; revoked either way.
 * - ledger_command may insert only the columns the event store writes; position, transaction_id
 *   and recorded_at are the database's (an event placed below every checkpoint is folded by
 *   aggregates but never projected; a backdated one changes what time travel answers).
 * Idempotent and skipped per role when the role does not exist (see CreateRoles).
 */
const STORE_COLUMNS = 'stream_id, version, type, schema_version, event_id, data, metadata';

export class PinSchemasAndColumns1764230400014 implements MigrationInterface {
  name = 'PinSchemasAndColumns1764230400014';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      DO $$
      DECLARE
        main text := current_schema();
        rebuild text := current_schema() || '_rebuild';
        role text;
      BEGIN
        IF to_regnamespace(rebuild) IS NULL THEN
          EXECUTE format('CREATE SCHEMA %I', rebuild);
        END IF;
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', rebuild);
        EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', main);
        EXECUTE format('REVOKE CREATE ON DATABASE %I FROM PUBLIC', current_database());
        FOREACH role IN ARRAY ARRAY['ledger_command', 'ledger_query', 'ledger_projector'] LOOP
          IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role) THEN
            EXECUTE format('REVOKE CREATE ON DATABASE %I FROM %I', current_database(), role);
            EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM %I', main, role);
          END IF;
        END LOOP;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ledger_projector') THEN
          EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO ledger_projector', rebuild);
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ledger_command') THEN
          -- Revoking the table-level INSERT also revokes any column-level one: grant the columns after.
          REVOKE INSERT ON events FROM ledger_command;
          GRANT INSERT (${STORE_COLUMNS}) ON events TO ledger_command;
        END IF;
      END $$`);
    // A rebuild that was running wrote its copy to a schema of its own (rebuild_<name>), which the new
    // code does not look at: start it again, into the rebuild schema. (The old schema is left to the
    // DBA: it belongs to the projector's login user.)
    await queryRunner.query(`
      UPDATE projection_checkpoints
      SET rebuild_status = 'requested', rebuild_transaction_id = '0', rebuild_position = 0, rebuild_events_applied = 0, updated_at = now()
      WHERE rebuild_status = 'running'`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    // What PUBLIC had before is not known: its CREATE stays revoked.
    await queryRunner.query(`
      DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ledger_command') THEN
          REVOKE INSERT (${STORE_COLUMNS}) ON events FROM ledger_command;
          GRANT INSERT ON events TO ledger_command;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ledger_projector') THEN
          EXECUTE format('GRANT CREATE ON DATABASE %I TO ledger_projector', current_database());
        END IF;
        EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', current_schema() || '_rebuild');
      END $$`);
  }
}
