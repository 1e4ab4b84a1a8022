import type { EntityManager } from 'typeorm';
import type { Checkpoint } from './recorded-event.js';
import { sql } from './sql.js';
import { toSafeNumber } from './stored-event.row.js';

/**
 * Asks for a rebuild of the whole projection (every segment); a rebuild already requested or running
 * is left as it is. It is recorded on segment 0's row, whose runner builds the copy from every event
 * and swaps it in for all segments at once (projection-rebuild.ts).
 */
export async function requestRebuild(manager: EntityManager, projection: string): Promise<void> {
  await sql(
    manager,
    `UPDATE projection_checkpoints
       SET rebuild_status = 'requested', rebuild_requested_at = now(), rebuild_transaction_id = '0',
           rebuild_position = 0, rebuild_events_applied = 0, updated_at = now()
       WHERE projection = $1 AND segment = 0 AND rebuild_status IS NULL`,
    [projection],
  );
}

/**
 * The other segments' rows of a projection, locked for the swap of a rebuild (in segment order, so
 * two swaps never deadlock; a segment's own batch locks only its row).
 */
export async function lockOtherSegments(manager: EntityManager, row: string): Promise<Checkpoint[]> {
  const { rows } = await sql<{ transaction_id: string; position: string }>(
    manager,
    `SELECT o.transaction_id, o.position FROM projection_checkpoints o
       JOIN projection_checkpoints s ON s.name = $1 AND o.projection = s.projection AND o.segments = s.segments AND o.name <> s.name
       ORDER BY o.segment FOR UPDATE OF o`,
    [row],
  );
  return rows.map((r) => ({ transactionId: r.transaction_id, position: toSafeNumber(r.position) }));
}

/** After a swap: every segment of the projection continues from the checkpoint the copy reached. */
export async function alignOtherSegments(manager: EntityManager, row: string, checkpoint: Checkpoint): Promise<void> {
  await sql(
    manager,
    `UPDATE projection_checkpoints o SET transaction_id = $2::xid8, position = $3, updated_at = now()
       FROM projection_checkpoints s
       WHERE s.name = $1 AND o.projection = s.projection AND o.segments = s.segments AND o.name <> s.name`,
    [row, checkpoint.transactionId, checkpoint.position],
  );
}

export async function rebuildStarted(manager: EntityManager, name: string): Promise<void> {
  await sql(manager, `UPDATE projection_checkpoints SET rebuild_status = 'running', updated_at = now() WHERE name = $1`, [name]);
}

export async function rebuildAdvanced(manager: EntityManager, name: string, checkpoint: Checkpoint, eventsApplied: number): Promise<void> {
  await sql(
    manager,
    `UPDATE projection_checkpoints
       SET rebuild_transaction_id = $2::xid8, rebuild_position = $3,
           rebuild_events_applied = rebuild_events_applied + $4, updated_at = now()
       WHERE name = $1`,
    [name, checkpoint.transactionId, checkpoint.position, eventsApplied],
  );
}

/** Ends a rebuild; for an async projection the live checkpoint becomes `liveCheckpoint`. */
export async function rebuildFinished(
  manager: EntityManager,
  name: string,
  liveCheckpoint: Checkpoint | null,
  error?: string,
): Promise<void> {
  await sql(
    manager,
    `UPDATE projection_checkpoints
       SET rebuild_status = NULL, rebuild_transaction_id = NULL, rebuild_position = NULL,
           rebuild_events_applied = NULL, rebuild_completed_at = CASE WHEN $4::text IS NULL THEN now() ELSE rebuild_completed_at END,
           last_error = coalesce($4, last_error),
           transaction_id = coalesce($2::xid8, transaction_id), position = coalesce($3, position), updated_at = now()
       WHERE name = $1`,
    [name, liveCheckpoint?.transactionId ?? null, liveCheckpoint?.position ?? null, error ?? null],
  );
}
