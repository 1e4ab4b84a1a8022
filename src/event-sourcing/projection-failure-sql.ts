import type { DataSource, EntityManager } from 'typeorm';
import { type ProjectionState, type Row, toState } from './projection-checkpoint-row.js';
import { sql } from './sql.js';
import { toSafeNumber } from './stored-event.row.js';

/**
 * Counts a failed attempt at `position`; at `maxAttempts` the projection stops in `failed`. Fenced
 * like every other write of a holder: only while `holder` still holds the live lease and the
 * projection runs (a stale holder whose reaction failed must not count attempts against, or stop,
 * the new holder's projection — found in review). null when that no longer holds.
 */
export async function recordFailure(
  manager: EntityManager,
  name: string,
  holder: { readonly owner: string; readonly token: string },
  position: number,
  error: string,
  maxAttempts: number,
): Promise<ProjectionState | null> {
  const { rows } = await sql<Row>(
    manager,
    `UPDATE projection_checkpoints
       SET attempts = CASE WHEN failed_position = $2 THEN attempts + 1 ELSE 1 END,
           status = CASE WHEN (CASE WHEN failed_position = $2 THEN attempts + 1 ELSE 1 END) >= $6 THEN 'failed' ELSE status END,
           failed_position = $2, last_error = $3, failed_at = now(), updated_at = now()
       WHERE name = $1 AND lease_owner = $4 AND lease_token = $5::bigint AND lease_expires_at > clock_timestamp()
         AND status = 'running'
       RETURNING *`,
    [name, position, error, holder.owner, holder.token, maxAttempts],
  );
  return rows.length ? toState(rows[0]) : null;
}

/**
 * Admin: try the failed events again (attempts start over), in every failed segment of the
 * projection. False when no segment is failed.
 */
export async function retry(manager: EntityManager, projection: string): Promise<boolean> {
  const { rowCount } = await sql(
    manager,
    `UPDATE projection_checkpoints SET status = 'running', attempts = 0, updated_at = now()
       WHERE projection = $1 AND status = 'failed'`,
    [projection],
  );
  return (rowCount ?? 0) > 0;
}

/**
 * Admin: move the checkpoint of the projection's first failed segment past its failed event (it was
 * the next one of that segment in commit order; the events between belong to other segments) and
 * record the skip with its error. Returns the skipped position, or null when no segment is failed
 * (several failed segments take one skip each).
 */
export async function skip(dataSource: DataSource, projection: string): Promise<number | null> {
  return dataSource.transaction(async (manager) => {
    const { rows } = await sql<{ name: string; failed_position: string; last_error: string | null; transaction_id: string; type: string }>(
      manager,
      `SELECT p.name, p.failed_position, p.last_error, e.transaction_id, e.type
         FROM projection_checkpoints p JOIN events e ON e.position = p.failed_position
         WHERE p.projection = $1 AND p.status = 'failed'
         ORDER BY p.segment LIMIT 1
         FOR UPDATE OF p`,
      [projection],
    );
    if (!rows.length) return null;
    const [failed] = rows;
    await sql(manager, `INSERT INTO projection_skips (projection, position, event_type, error) VALUES ($1, $2, $3, $4)`, [
      projection,
      failed.failed_position,
      failed.type,
      failed.last_error,
    ]);
    await sql(
      manager,
      `UPDATE projection_checkpoints
         SET transaction_id = $2::xid8, position = $3, status = 'running', attempts = 0, updated_at = now(),
             last_error = NULL, failed_position = NULL, failed_at = NULL
         WHERE name = $1`,
      [failed.name, failed.transaction_id, failed.failed_position],
    );
    return toSafeNumber(failed.failed_position);
  });
}

export async function skips(
  manager: EntityManager,
  name: string,
): Promise<Array<{ position: number; eventType: string; error: string | null; skippedAt: Date }>> {
  const { rows } = await sql<{ position: string; event_type: string; error: string | null; skipped_at: Date }>(
    manager,
    `SELECT position, event_type, error, skipped_at FROM projection_skips WHERE projection = $1 ORDER BY id`,
    [name],
  );
  return rows.map((row) => ({
    position: toSafeNumber(row.position),
    eventType: row.event_type,
    error: row.error,
    skippedAt: row.skipped_at,
  }));
}
