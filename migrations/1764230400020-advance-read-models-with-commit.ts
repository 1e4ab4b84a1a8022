import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * ledger_advance_checkpoint(name, owner, token, from, to, ttl): the fenced move of a read model's
 * live checkpoint at the end of its batch (what advanceIfLeader's UPDATE did), raising SQLSTATE
 * LF001 instead of answering no row when the fence does not hold. A statement that raises is what
 * lets the engine send it together with the COMMIT in one message (simple protocol): the COMMIT runs
 * only if the move did, and the row's lock is not held across a round trip (a holder paused there
 * kept the next holder's takeover waiting). Answers the row as it now stands.
 * SECURITY INVOKER: it does only what its caller may do anyway (UPDATE on projection_checkpoints,
 * which only the projector has), so EXECUTE stays with PUBLIC, as for any function: a projector
 * login a DBA creates after this migration, with the table grants docs/architecture.md lists, needs
 * nothing more (found in review: revoked from PUBLIC and granted only to a role existing at migration
 * time, such a login had every batch refused). The search_path is pinned (pg_temp last, see
 * FenceProjectionLeases1764230400013) so a caller cannot redirect its names.
 */
const SIGNATURE = 'ledger_advance_checkpoint(text, text, bigint, xid8, bigint, xid8, bigint, double precision)';

export class AdvanceReadModelsWithCommit1764230400020 implements MigrationInterface {
  name = 'AdvanceReadModelsWithCommit1764230400020';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      DO $do$ BEGIN
        EXECUTE format($create$
          CREATE FUNCTION %1$I.ledger_advance_checkpoint(
            p_name text, p_owner text, p_token bigint, p_from_transaction xid8, p_from_position bigint,
            p_to_transaction xid8, p_to_position bigint, p_ttl_ms double precision)
          RETURNS SETOF %1$I.projection_checkpoints
          LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, %1$I, pg_temp AS $advance$
          DECLARE
            moved projection_checkpoints;
          BEGIN
            UPDATE projection_checkpoints
              SET transaction_id = p_to_transaction, position = p_to_position, attempts = 0, updated_at = now(),
                  last_error = NULL, failed_position = NULL, failed_at = NULL,
                  lease_expires_at = clock_timestamp() + make_interval(secs => p_ttl_ms / 1000)
              WHERE name = p_name AND lease_owner = p_owner AND lease_token = p_token
                AND lease_expires_at > clock_timestamp() AND status = 'running'
                AND transaction_id = p_from_transaction AND position = p_from_position
              RETURNING * INTO moved;
            IF NOT FOUND THEN
              RAISE EXCEPTION 'lease lost: projection %% is no longer held by %% with token %% at its checkpoint', p_name, p_owner, p_token
                USING ERRCODE = 'LF001';
            END IF;
            RETURN NEXT moved;
          END
          $advance$
        $create$, current_schema());
      END $do$`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP FUNCTION ${SIGNATURE}`);
  }
}
