import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { PROJECTOR_DATA_SOURCE } from './data-sources.js';
import { UnknownProjectionError } from './errors.js';
import { ProjectionCheckpoints, type ProjectionState } from './projection-checkpoints.js';
import type { ProjectionMode } from './projection.js';
import { ProjectionRegistry } from './projection.registry.js';
import type { Checkpoint } from './recorded-event.js';
import { sql } from './sql.js';
import { toSafeNumber } from './stored-event.row.js';

export interface ProjectionStatusReport {
  readonly name: string;
  readonly mode: ProjectionMode;
  readonly status: ProjectionState['status'];
  readonly checkpoint: Checkpoint;
  /** Committed events the projection has not applied yet (0 for inline projections). */
  readonly lagEvents: number;
  /** How long the oldest of those has been waiting, in milliseconds. */
  readonly lagMs: number;
  readonly attempts: number;
  readonly lastError: string | null;
  readonly failedPosition: number | null;
  readonly failedAt: Date | null;
  readonly leaseOwner: string | null;
  readonly leaseExpiresAt: Date | null;
  readonly rebuild: {
    readonly status: 'requested' | 'running';
    readonly position: number;
    readonly eventsApplied: number;
    readonly eventsRemaining: number;
    readonly requestedAt: Date;
  } | null;
  readonly lastRebuildCompletedAt: Date | null;
}

/** What operators see of each projection: where it stands, how far behind, what went wrong. */
@Injectable()
export class ProjectionStatus {
  constructor(
    private readonly registry: ProjectionRegistry,
    private readonly checkpoints: ProjectionCheckpoints,
    @Inject(PROJECTOR_DATA_SOURCE) private readonly dataSource: DataSource,
  ) {}

  async all(): Promise<ProjectionStatusReport[]> {
    const states = new Map((await this.checkpoints.loadAll()).map((state) => [state.name, state]));
    const reports = [];
    for (const projection of this.registry.all()) {
      const state = states.get(projection.name);
      if (state) reports.push(await this.report(projection.mode, state));
    }
    return reports;
  }

  async one(name: string): Promise<ProjectionStatusReport> {
    const projection = this.registry.get(name);
    const state = projection && (await this.checkpoints.load(name));
    if (!projection || !state) throw new UnknownProjectionError(name);
    return this.report(projection.mode, state);
  }

  private async report(mode: ProjectionMode, state: ProjectionState): Promise<ProjectionStatusReport> {
    const lag = mode === 'async' ? await this.backlog(state.checkpoint) : { events: 0, oldest: null };
    const rebuildBacklog = state.rebuild ? await this.backlog(state.rebuild.checkpoint) : undefined;
    return {
      name: state.name,
      mode,
      status: state.status,
      checkpoint: state.checkpoint,
      lagEvents: lag.events,
      lagMs: lag.oldest ? Math.max(0, Date.now() - lag.oldest.getTime()) : 0,
      attempts: state.attempts,
      lastError: state.lastError,
      failedPosition: state.failedPosition,
      failedAt: state.failedAt,
      leaseOwner: state.leaseOwner,
      leaseExpiresAt: state.leaseExpiresAt,
      rebuild: state.rebuild && {
        status: state.rebuild.status,
        position: state.rebuild.checkpoint.position,
        eventsApplied: state.rebuild.eventsApplied,
        eventsRemaining: rebuildBacklog!.events,
        requestedAt: state.rebuild.requestedAt,
      },
      lastRebuildCompletedAt: state.rebuildCompletedAt,
    };
  }

  /** Committed events after a checkpoint, and when the oldest of them was recorded. */
  private async backlog(after: Checkpoint): Promise<{ events: number; oldest: Date | null }> {
    const { rows } = await sql<{ events: string; oldest: Date | null }>(
      this.dataSource.manager,
      `SELECT count(*) AS events, min(recorded_at) AS oldest FROM events
       WHERE (transaction_id, position) > ($1::xid8, $2::bigint)`,
      [after.transactionId, after.position],
    );
    return { events: toSafeNumber(rows[0].events), oldest: rows[0].oldest };
  }
}
