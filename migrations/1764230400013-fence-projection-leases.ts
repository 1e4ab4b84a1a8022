import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Fencing tokens for projection leases.
 * - projection_checkpoints.lease_token: taken up by one every time a process acquires a lease (not
 *   when the holder renews it), so each holding of a lease has a number of its own;
 * - ledger_fence(name, owner, token): raises SQLSTATE LF001 unless that owner still holds the lease
 *   with that token and it has not expired. It locks the row FOR SHARE, so a takeover (an UPDATE
 *   of the row) cannot commit between the check and the COMMIT of the transaction that called it:
 *   a process manager's step made by a holder that was paused past its lease is refused by the
 *   database, not by the holder's own clock.
 * SECURITY DEFINER: the command role runs process managers' steps and may call it without any
 * right on projection_checkpoints; the search_path is pinned to this schema (and pg_catalog first)
 * so a caller cannot make it resolve its names elsewhere; pg_temp is named last, because a
 * search_path that omits it searches the caller's temporary tables and types FIRST.
 */
const ROLES = ['ledger_command', 'ledger_projector'] as const;

export class FenceProjectionLeases1764230400013 implements MigrationInterface {
  name = 'FenceProjectionLeases1764230400013';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE projection_checkpoints ADD COLUMN lease_token bigint NOT NULL DEFAULT 0`);
    await queryRunner.query(`
      DO $do$ BEGIN
        EXECUTE format($create$
          CREATE FUNCTION %1$I.ledger_fence(p_name text, p_owner text, p_token bigint) RETURNS void
          LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, %1$I, pg_temp AS $fence$
          DECLARE
            lease record;
          BEGIN
            SELECT lease_owner, lease_token, lease_expires_at INTO lease
            FROM projection_checkpoints WHERE name = p_name FOR SHARE;
            IF NOT FOUND OR lease.lease_owner IS DISTINCT FROM p_owner OR lease.lease_token <> p_token
               OR lease.lease_expires_at IS NULL OR lease.lease_expires_at <= clock_timestamp() THEN
              RAISE EXCEPTION 'lease lost: projection %% is no longer held by %% with token %%', p_name, p_owner, p_token
                USING ERRCODE = 'LF001';
            END IF;
          END
          $fence$
        $create$, current_schema());
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %I.ledger_fence(text, text, bigint) FROM PUBLIC', current_schema());
      END $do$`);
    for (const role of ROLES) {
      // Roles may be missing (see CreateRoles1764230400011): grant only to those that exist.
      await queryRunner.query(`
        DO $do$ BEGIN
          IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${role}') THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %I.ledger_fence(text, text, bigint) TO ${role}', current_schema());
          END IF;
        END $do$`);
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP FUNCTION ledger_fence(text, text, bigint)`);
    await queryRunner.query(`ALTER TABLE projection_checkpoints DROP COLUMN lease_token`);
  }
}
