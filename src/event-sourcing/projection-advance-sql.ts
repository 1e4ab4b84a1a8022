import type { EntityManager } from 'typeorm';
import type { Checkpoint } from './recorded-event.js';
import { sql } from './sql.js';

/**
 * Advances the live checkpoint (same transaction as the read-table writes) and renews the lease;
 * `completedAhead`: a process manager's events completed past the new checkpoint (empty for a
 * projection with tables).
 */
export async function advance(
  manager: EntityManager,
  name: string,
  checkpoint: Checkpoint,
  ttlMs: number,
  completedAhead: readonly number[] = [],
): Promise<void> {
  await sql(
    manager,
    `UPDATE projection_checkpoints
       SET transaction_id = $2::xid8, position = $3, attempts = 0, updated_at = now(),
           last_error = NULL, failed_position = NULL, failed_at = NULL, completed_ahead = $5::bigint[],
           lease_expires_at = clock_timestamp() + make_interval(secs => $4::double precision / 1000)
       WHERE name = $1`,
    [name, checkpoint.transactionId, checkpoint.position, ttlMs, completedAhead],
  );
}

/** A process manager's events completed past a checkpoint that did not move (see advance). */
export async function rememberCompletedAhead(manager: EntityManager, name: string, completedAhead: readonly number[]): Promise<void> {
  await sql(manager, `UPDATE projection_checkpoints SET completed_ahead = $2::bigint[], updated_at = now() WHERE name = $1`, [
    name,
    completedAhead,
  ]);
}

/**
 * Moves the live checkpoint from `from` to `to` past events the projection does not handle, in one
 * autocommit statement fenced like a batch: only while `owner` holds the lease with this token, the projection
 * runs, and the stored checkpoint is still exactly `from`. False when any of that no longer holds.
 */
export async function advancePast(
  manager: EntityManager,
  name: string,
  owner: string,
  token: string,
  from: Checkpoint,
  to: Checkpoint,
  ttlMs: number,
): Promise<boolean> {
  const { rowCount } = await sql(
    manager,
    `UPDATE projection_checkpoints
       SET transaction_id = $5::xid8, position = $6, attempts = 0, updated_at = now(),
           last_error = NULL, failed_position = NULL, failed_at = NULL,
           lease_expires_at = clock_timestamp() + make_interval(secs => $7::double precision / 1000)
       WHERE name = $1 AND lease_owner = $2 AND lease_token = $8::bigint AND lease_expires_at > clock_timestamp()
         AND status = 'running' AND transaction_id = $3::xid8 AND position = $4`,
    [name, owner, from.transactionId, from.position, to.transactionId, to.position, ttlMs, token],
  );
  return rowCount === 1;
}
