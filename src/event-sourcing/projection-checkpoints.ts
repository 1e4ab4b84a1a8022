import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import type { Checkpoint } from './recorded-event.js';
import { sql } from './sql.js';
import { toSafeNumber } from './stored-event.row.js';
import { PROJECTOR_DATA_SOURCE } from './data-sources.js';

export type ProjectionRunStatus = 'running' | 'failed';
export type RebuildStatus = 'requested' | 'running';

/** One row of projection_checkpoints, as the engine and the admin API see it. */
export interface ProjectionState {
  readonly name: string;
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
}

interface Row {
  name: string;
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
}

function toState(row: Row): ProjectionState {
  return {
    name: row.name,
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
  };
}

/**
 * SQL of projection_checkpoints. Leadership is a lease row rather than a session advisory lock:
 * everything happens inside transactions, so it keeps meaning what it says behind a transaction-
 * pooling proxy, and every batch re-checks the lease under a row lock in the very transaction that
 * writes the read tables (a fencing check: a runner that lost its lease cannot commit).
 */
@Injectable()
export class ProjectionCheckpoints {
  constructor(@Inject(PROJECTOR_DATA_SOURCE) private readonly dataSource: DataSource) {}

  private get manager(): EntityManager {
    return this.dataSource.manager;
  }

  async ensure(names: readonly string[]): Promise<void> {
    if (names.length === 0) return;
    await sql(this.manager, `INSERT INTO projection_checkpoints (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING`, [names]);
  }

  async load(name: string, manager: EntityManager = this.dataSource.manager): Promise<ProjectionState | null> {
    const { rows } = await sql<Row>(manager, `SELECT * FROM projection_checkpoints WHERE name = $1`, [name]);
    return rows.length ? toState(rows[0]) : null;
  }

  async loadAll(): Promise<ProjectionState[]> {
    const { rows } = await sql<Row>(this.manager, `SELECT * FROM projection_checkpoints ORDER BY name`);
    return rows.map(toState);
  }

  /**
   * Takes the lease when it is free, expired, or already this owner's (a holding this process lost
   * track of), as a new holding: the token goes up by one and is returned; null when another process
   * holds it. SKIP LOCKED: a row locked by the current holder's batch or step is simply "not ours
   * now", never something to queue behind.
   */
  async acquireLease(name: string, owner: string, ttlMs: number): Promise<string | null> {
    const { rows } = await sql<{ lease_token: string }>(
      this.manager,
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
  async renewLease(name: string, owner: string, token: string, ttlMs: number): Promise<boolean> {
    const { rowCount } = await sql(
      this.manager,
      `UPDATE projection_checkpoints
       SET lease_expires_at = clock_timestamp() + make_interval(secs => $4::double precision / 1000)
       WHERE name = $1 AND lease_owner = $2 AND lease_token = $3::bigint AND lease_expires_at > clock_timestamp()`,
      [name, owner, token, ttlMs],
    );
    return rowCount === 1;
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    await sql(
      this.manager,
      `UPDATE projection_checkpoints SET lease_owner = NULL, lease_expires_at = NULL WHERE name = $1 AND lease_owner = $2`,
      [name, owner],
    );
  }

  /**
   * Locks the row for the rest of `manager`'s transaction if `owner` still holds a live lease with
   * this token; null otherwise (the caller must then write nothing).
   */
  async lockIfLeader(manager: EntityManager, name: string, owner: string, token: string): Promise<ProjectionState | null> {
    const { rows } = await sql<Row>(
      manager,
      `SELECT * FROM projection_checkpoints
       WHERE name = $1 AND lease_owner = $2 AND lease_token = $3::bigint AND lease_expires_at > clock_timestamp()
       FOR UPDATE`,
      [name, owner, token],
    );
    return rows.length ? toState(rows[0]) : null;
  }

  /** Advances the live checkpoint (same transaction as the read-table writes) and renews the lease. */
  async advance(manager: EntityManager, name: string, checkpoint: Checkpoint, ttlMs: number): Promise<void> {
    await sql(
      manager,
      `UPDATE projection_checkpoints
       SET transaction_id = $2::xid8, position = $3, attempts = 0, updated_at = now(),
           last_error = NULL, failed_position = NULL, failed_at = NULL,
           lease_expires_at = clock_timestamp() + make_interval(secs => $4::double precision / 1000)
       WHERE name = $1`,
      [name, checkpoint.transactionId, checkpoint.position, ttlMs],
    );
  }

  /**
   * Moves the live checkpoint from `from` to `to` past events the projection does not handle, in one
   * autocommit statement fenced like a batch: only while `owner` holds the lease with this token, the projection
   * runs, and the stored checkpoint is still exactly `from`. False when any of that no longer holds.
   */
  async advancePast(name: string, owner: string, token: string, from: Checkpoint, to: Checkpoint, ttlMs: number): Promise<boolean> {
    const { rowCount } = await sql(
      this.manager,
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

  /** Counts a failed attempt at `position`; at `maxAttempts` the projection stops in `failed`. */
  async recordFailure(name: string, position: number, error: string, maxAttempts: number): Promise<ProjectionState> {
    const { rows } = await sql<Row>(
      this.manager,
      `UPDATE projection_checkpoints
       SET attempts = CASE WHEN failed_position = $2 THEN attempts + 1 ELSE 1 END,
           failed_position = $2, last_error = $3, failed_at = now(), updated_at = now()
       WHERE name = $1
       RETURNING *`,
      [name, position, error],
    );
    const state = toState(rows[0]);
    if (state.attempts < maxAttempts) return state;
    const failed = await sql<Row>(
      this.manager,
      `UPDATE projection_checkpoints SET status = 'failed', updated_at = now() WHERE name = $1 RETURNING *`,
      [name],
    );
    return toState(failed.rows[0]);
  }

  /** Admin: try the failed event again (attempts start over). False when the projection is not failed. */
  async retry(name: string): Promise<boolean> {
    const { rowCount } = await sql(
      this.manager,
      `UPDATE projection_checkpoints SET status = 'running', attempts = 0, updated_at = now()
       WHERE name = $1 AND status = 'failed'`,
      [name],
    );
    return rowCount === 1;
  }

  /**
   * Admin: move the checkpoint past the failed event (it was the next one in commit order) and record
   * the skip with its error. Returns the skipped position, or null when the projection is not failed.
   */
  async skip(name: string): Promise<number | null> {
    return this.dataSource.transaction(async (manager) => {
      const { rows } = await sql<{ failed_position: string; last_error: string | null; transaction_id: string; type: string }>(
        manager,
        `SELECT p.failed_position, p.last_error, e.transaction_id, e.type
         FROM projection_checkpoints p JOIN events e ON e.position = p.failed_position
         WHERE p.name = $1 AND p.status = 'failed'
         FOR UPDATE OF p`,
        [name],
      );
      if (!rows.length) return null;
      const [failed] = rows;
      await sql(manager, `INSERT INTO projection_skips (projection, position, event_type, error) VALUES ($1, $2, $3, $4)`, [
        name,
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
        [name, failed.transaction_id, failed.failed_position],
      );
      return toSafeNumber(failed.failed_position);
    });
  }

  /** Asks the runner for a rebuild; a rebuild already requested or running is left as it is. */
  async requestRebuild(name: string): Promise<void> {
    await sql(
      this.manager,
      `UPDATE projection_checkpoints
       SET rebuild_status = 'requested', rebuild_requested_at = now(), rebuild_transaction_id = '0',
           rebuild_position = 0, rebuild_events_applied = 0, updated_at = now()
       WHERE name = $1 AND rebuild_status IS NULL`,
      [name],
    );
  }

  async rebuildStarted(manager: EntityManager, name: string): Promise<void> {
    await sql(manager, `UPDATE projection_checkpoints SET rebuild_status = 'running', updated_at = now() WHERE name = $1`, [name]);
  }

  async rebuildAdvanced(manager: EntityManager, name: string, checkpoint: Checkpoint, eventsApplied: number): Promise<void> {
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
  async rebuildFinished(manager: EntityManager, name: string, liveCheckpoint: Checkpoint | null, error?: string): Promise<void> {
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

  async skips(name: string): Promise<Array<{ position: number; eventType: string; error: string | null; skippedAt: Date }>> {
    const { rows } = await sql<{ position: string; event_type: string; error: string | null; skipped_at: Date }>(
      this.manager,
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
}
