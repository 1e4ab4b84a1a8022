import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { PROJECTOR_DATA_SOURCE } from './data-sources.js';
import { compareCheckpoints } from './checkpoint-order.js';
import { UnknownProjectionError } from './errors.js';
import { ProjectionCheckpoints, type ProjectionState } from './projection-checkpoints.js';
import type { ProjectionMode } from './projection.js';
import { ProjectionRegistry } from './projection.registry.js';
import type { Checkpoint } from './recorded-event.js';
import { sql } from './sql.js';
import { modeOf } from './subscriber.js';
import { toSafeNumber } from './stored-event.row.js';

/** One segment of a projection, as operators see it. */
export interface SegmentStatusReport {
  readonly segment: number;
  readonly status: ProjectionState['status'];
  readonly checkpoint: Checkpoint;
  /** Committed events after its checkpoint (of every key: what it has still to read past). */
  readonly lagEvents: number;
  readonly lagMs: number;
  readonly attempts: number;
  readonly lastError: string | null;
  readonly failedPosition: number | null;
  readonly leaseOwner: string | null;
  readonly leaseExpiresAt: Date | null;
}

/**
 * A projection as a whole (the fields it had before segments, so current clients keep working),
 * and each of its segments. Over the segments: `status` is failed when any is; `checkpoint` is the
 * earliest (what the projection reflects); lag, attempts are the largest; the failure is the first
 * failed segment's; the lease and the rebuild are segment 0's.
 */
export interface ProjectionStatusReport {
  readonly name: string;
  readonly mode: ProjectionMode;
  readonly status: ProjectionState['status'];
  readonly checkpoint: Checkpoint;
  /** Committed events the projection has not applied yet (0 for inline projections); the most over its segments. */
  readonly lagEvents: number;
  /** How long the oldest of those has been waiting, in milliseconds; the most over its segments. */
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
  readonly segments: readonly SegmentStatusReport[];
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
    const byProjection = new Map<string, ProjectionState[]>();
    for (const state of await this.checkpoints.loadAll()) {
      byProjection.set(state.projection, [...(byProjection.get(state.projection) ?? []), state]);
    }
    const reports = [];
    for (const projection of this.registry.all()) {
      const segments = byProjection.get(projection.name);
      if (segments) reports.push(await this.report(modeOf(projection), segments));
    }
    return reports;
  }

  async one(name: string): Promise<ProjectionStatusReport> {
    const projection = this.registry.get(name);
    const segments = projection ? await this.checkpoints.loadSegments(name) : [];
    if (!projection || segments.length === 0) throw new UnknownProjectionError(name);
    return this.report(modeOf(projection), segments);
  }

  private async report(mode: ProjectionMode, states: readonly ProjectionState[]): Promise<ProjectionStatusReport> {
    const segments: SegmentStatusReport[] = [];
    for (const segment of states) {
      const lag = mode === 'async' ? await this.backlog(segment.checkpoint) : { events: 0, oldest: null };
      segments.push({
        segment: segment.segment,
        status: segment.status,
        checkpoint: segment.checkpoint,
        lagEvents: lag.events,
        lagMs: lag.oldest ? Math.max(0, Date.now() - lag.oldest.getTime()) : 0,
        attempts: segment.attempts,
        lastError: segment.lastError,
        failedPosition: segment.failedPosition,
        leaseOwner: segment.leaseOwner,
        leaseExpiresAt: segment.leaseExpiresAt,
      });
    }
    const state = states[0];
    const failed = states.find((segment) => segment.status === 'failed');
    const failing = failed ?? states.find((segment) => segment.failedPosition !== null);
    const rebuildBacklog = state.rebuild ? await this.backlog(state.rebuild.checkpoint) : undefined;
    return {
      name: state.projection,
      mode,
      status: failed ? 'failed' : 'running',
      checkpoint: states.map((segment) => segment.checkpoint).reduce((a, b) => (compareCheckpoints(a, b) <= 0 ? a : b)),
      lagEvents: Math.max(...segments.map((segment) => segment.lagEvents)),
      lagMs: Math.max(...segments.map((segment) => segment.lagMs)),
      attempts: Math.max(...segments.map((segment) => segment.attempts)),
      lastError: (failing ?? states.find((segment) => segment.lastError !== null))?.lastError ?? null,
      failedPosition: failing?.failedPosition ?? null,
      failedAt: failing?.failedAt ?? null,
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
      segments,
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
