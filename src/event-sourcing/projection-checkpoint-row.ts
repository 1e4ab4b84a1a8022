import type { Checkpoint } from './recorded-event.js';
import { toSafeNumber } from './stored-event.row.js';

export type ProjectionRunStatus = 'running' | 'failed';
export type RebuildStatus = 'requested' | 'running';

/** One row of projection_checkpoints, as the engine and the admin API see it. */
export interface ProjectionState {
  /** The row's key: the projection's name, or its segment's (segmentRow). */
  readonly name: string;
  readonly projection: string;
  readonly segment: number;
  readonly segments: number;
  readonly checkpoint: Checkpoint;
  readonly status: ProjectionRunStatus;
  readonly attempts: number;
  readonly lastError: string | null;
  readonly failedPosition: number | null;
  readonly failedAt: Date | null;
  readonly leaseOwner: string | null;
  readonly leaseExpiresAt: Date | null;
  /** Taken up by one with every new holding of the lease (bigint as a string). */
  readonly leaseToken: string;
  readonly rebuild: {
    readonly status: RebuildStatus;
    readonly checkpoint: Checkpoint;
    readonly eventsApplied: number;
    readonly requestedAt: Date;
  } | null;
  readonly rebuildCompletedAt: Date | null;
  /**
   * A process manager's events completed past the checkpoint (their positions): lanes completed them
   * while an earlier event of the batch had not. Every holder skips them (projection-reactions.ts).
   */
  readonly completedAhead: readonly number[];
}

export interface Row {
  name: string;
  projection: string;
  segment: number;
  segments: number;
  transaction_id: string;
  position: string;
  status: ProjectionRunStatus;
  attempts: number;
  last_error: string | null;
  failed_position: string | null;
  failed_at: Date | null;
  lease_owner: string | null;
  lease_expires_at: Date | null;
  lease_token: string;
  rebuild_status: RebuildStatus | null;
  rebuild_transaction_id: string | null;
  rebuild_position: string | null;
  rebuild_events_applied: string | null;
  rebuild_requested_at: Date | null;
  rebuild_completed_at: Date | null;
  completed_ahead: string[];
}

export function toState(row: Row): ProjectionState {
  return {
    name: row.name,
    projection: row.projection,
    segment: row.segment,
    segments: row.segments,
    checkpoint: { transactionId: row.transaction_id, position: toSafeNumber(row.position) },
    status: row.status,
    attempts: row.attempts,
    lastError: row.last_error,
    failedPosition: row.failed_position === null ? null : toSafeNumber(row.failed_position),
    failedAt: row.failed_at,
    leaseOwner: row.lease_owner,
    leaseExpiresAt: row.lease_expires_at,
    leaseToken: row.lease_token,
    rebuild: row.rebuild_status
      ? {
          status: row.rebuild_status,
          checkpoint: { transactionId: row.rebuild_transaction_id ?? '0', position: toSafeNumber(row.rebuild_position ?? 0) },
          eventsApplied: toSafeNumber(row.rebuild_events_applied ?? 0),
          requestedAt: row.rebuild_requested_at!,
        }
      : null,
    rebuildCompletedAt: row.rebuild_completed_at,
    completedAhead: (row.completed_ahead ?? []).map(toSafeNumber),
  };
}
