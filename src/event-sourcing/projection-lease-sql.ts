import type { EntityManager } from 'typeorm';
import { type ProjectionState, type Row, toState } from './projection-checkpoint-row.js';
import { sql } from './sql.js';

/*
 * Leadership is a lease row rather than a session advisory lock: everything happens inside
 * transactions, so it keeps meaning what it says behind a transaction-pooling proxy, and every batch
 * re-checks the lease under a row lock in the very transaction that writes the read tables (a
 * fencing check: a runner that lost its lease cannot commit).
 */

/**
 * Takes the lease when it is free, expired, or already this owner's (a holding this process lost
 * track of), as a new holding: the token goes up by one and is returned; null when another process
 * holds it. SKIP LOCKED: a row locked by the current holder's batch or step is simply "not ours
 * now", never something to queue behind.
 */
export async function acquireLease(manager: EntityManager, name: string, owner: string, ttlMs: number): Promise<string | null> {
  const { rows } = await sql<{ lease_token: string }>(
    manager,
    `WITH candidate AS (
         SELECT name FROM projection_checkpoints
         WHERE name = $1 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_expires_at < clock_timestamp())
         FOR UPDATE SKIP LOCKED
       )
       UPDATE projection_checkpoints p
       SET lease_owner = $2, lease_token = p.lease_token + 1,
           lease_expires_at = clock_timestamp() + make_interval(secs => $3::double precision / 1000)
       FROM candidate WHERE p.name = candidate.name
       RETURNING p.lease_token`,
    [name, owner, ttlMs],
  );
  return rows.length ? rows[0].lease_token : null;
}

/**
 * Extends a live holding. Not SKIP LOCKED: a step of the holder may lock the row FOR SHARE until
 * its COMMIT (ledger_fence), and the renewal waits those few milliseconds rather than mistake the
 * lock for a lost lease. False when the holding is over (expired, or taken over).
 */
export async function renewLease(manager: EntityManager, name: string, owner: string, token: string, ttlMs: number): Promise<boolean> {
  const { rowCount } = await sql(
    manager,
    `UPDATE projection_checkpoints
       SET lease_expires_at = clock_timestamp() + make_interval(secs => $4::double precision / 1000)
       WHERE name = $1 AND lease_owner = $2 AND lease_token = $3::bigint AND lease_expires_at > clock_timestamp()`,
    [name, owner, token, ttlMs],
  );
  return rowCount === 1;
}

export async function releaseLease(manager: EntityManager, name: string, owner: string): Promise<void> {
  await sql(manager, `UPDATE projection_checkpoints SET lease_owner = NULL, lease_expires_at = NULL WHERE name = $1 AND lease_owner = $2`, [
    name,
    owner,
  ]);
}

/**
 * Locks the row for the rest of `manager`'s transaction if `owner` still holds a live lease with
 * this token; null otherwise (the caller must then write nothing).
 */
export async function lockIfLeader(manager: EntityManager, name: string, owner: string, token: string): Promise<ProjectionState | null> {
  const { rows } = await sql<Row>(
    manager,
    `SELECT * FROM projection_checkpoints
       WHERE name = $1 AND lease_owner = $2 AND lease_token = $3::bigint AND lease_expires_at > clock_timestamp()
       FOR UPDATE`,
    [name, owner, token],
  );
  return rows.length ? toState(rows[0]) : null;
}
