import type { EntityManager } from 'typeorm';
import type { Checkpoint } from './recorded-event.js';
import { sql } from './sql.js';

/** Asks the runner for a rebuild; a rebuild already requested or running is left as it is. */
export async function requestRebuild(manager: EntityManager, name: string): Promise<void> {
  await sql(
    manager,
    `UPDATE projection_checkpoints
       SET rebuild_status = 'requested', rebuild_requested_at = now(), rebuild_transaction_id = '0',
           rebuild_position = 0, rebuild_events_applied = 0, updated_at = now()
       WHERE name = $1 AND rebuild_status IS NULL`,
    [name],
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
