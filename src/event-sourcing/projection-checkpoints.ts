import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { CheckpointPasses } from './checkpoint-passes.js';
import { type ReadModelBatch, ReadModelBatchCommits } from './read-model-batch-commits.js';
import { advanceReaction } from './projection-advance-sql.js';
import { type ProjectionState, type Row, toState } from './projection-checkpoint-row.js';
import { recordFailure, retry, skip, skips } from './projection-failure-sql.js';
import { acquireLease, lockIfLeader, releaseLease, renewLease } from './projection-lease-sql.js';
import {
  alignOtherSegments,
  lockOtherSegments,
  rebuildAdvanced,
  rebuildFinished,
  rebuildStarted,
  requestRebuild,
} from './projection-rebuild-sql.js';
import type { Checkpoint } from './recorded-event.js';
import { sql } from './sql.js';
import { PROJECTOR_DATA_SOURCE } from './data-sources.js';

export type { ProjectionRunStatus, ProjectionState, RebuildStatus } from './projection-checkpoint-row.js';

/**
 * SQL of projection_checkpoints, one entry point for the engine and the admin API; the statements
 * live by job in projection-lease-sql.ts (leadership, and why it is a lease row),
 * projection-advance-sql.ts, projection-failure-sql.ts and projection-rebuild-sql.ts.
 * Every statement runs on the projector's connection unless a transaction's manager is given.
 */
@Injectable()
export class ProjectionCheckpoints {
  private readonly passes = new CheckpointPasses(() => this.manager);
  /** Read models' live batches of one turn, committed in one transaction (read-model-batch-commits.ts). */
  readonly batchCommits = new ReadModelBatchCommits(() => this.dataSource);

  constructor(@Inject(PROJECTOR_DATA_SOURCE) private readonly dataSource: DataSource) {}

  private get manager(): EntityManager {
    return this.dataSource.manager;
  }

  /** Rows of single-segment projections (segment 0 of 1, keyed by the name); see ensureSegmentLayout for more. */
  async ensure(names: readonly string[]): Promise<void> {
    if (names.length === 0) return;
    await sql(
      this.manager,
      `INSERT INTO projection_checkpoints (name, projection) SELECT n, n FROM unnest($1::text[]) AS n ON CONFLICT (name) DO NOTHING`,
      [names],
    );
  }

  /** One row by its key (a segment's row, or a single-segment projection's). */
  async load(name: string, manager: EntityManager = this.dataSource.manager): Promise<ProjectionState | null> {
    const { rows } = await sql<Row>(manager, `SELECT * FROM projection_checkpoints WHERE name = $1`, [name]);
    return rows.length ? toState(rows[0]) : null;
  }

  /** Every segment's row of a projection, in segment order. */
  async loadSegments(projection: string, manager: EntityManager = this.dataSource.manager): Promise<ProjectionState[]> {
    const { rows } = await sql<Row>(manager, `SELECT * FROM projection_checkpoints WHERE projection = $1 ORDER BY segment`, [projection]);
    return rows.map(toState);
  }

  async loadAll(): Promise<ProjectionState[]> {
    const { rows } = await sql<Row>(this.manager, `SELECT * FROM projection_checkpoints ORDER BY projection, segment`);
    return rows.map(toState);
  }

  acquireLease(name: string, owner: string, ttlMs: number): Promise<string | null> {
    return acquireLease(this.manager, name, owner, ttlMs);
  }

  renewLease(name: string, owner: string, token: string, ttlMs: number): Promise<boolean> {
    return renewLease(this.manager, name, owner, token, ttlMs);
  }

  releaseLease(name: string, owner: string): Promise<void> {
    return releaseLease(this.manager, name, owner);
  }

  lockIfLeader(manager: EntityManager, name: string, owner: string, token: string): Promise<ProjectionState | null> {
    return lockIfLeader(manager, name, owner, token);
  }

  /**
   * Ends a process manager's batch: one fenced autocommit statement on a pooled connection of its
   * own, never inside a caller's transaction (null: not this holder's any more).
   */
  advanceReaction(
    name: string,
    holder: { readonly owner: string; readonly token: string },
    from: Checkpoint,
    to: Checkpoint | undefined,
    ttlMs: number,
    completedAhead: readonly number[],
  ): Promise<ProjectionState | null> {
    return advanceReaction(this.manager, name, holder, from, to, ttlMs, completedAhead);
  }

  /**
   * Commits a read model's live batch: its writes, then the fenced move of its checkpoint with the
   * COMMIT; batches ready in the same turn share the transaction (null: not this holder's any more).
   */
  commitLiveBatch(batch: ReadModelBatch): Promise<ProjectionState | null> {
    return this.batchCommits.commit(batch);
  }

  /** Moves a segment's checkpoint past events it does not handle; moves asked for in one turn share a statement. */
  advancePast(name: string, owner: string, token: string, from: Checkpoint, to: Checkpoint, ttlMs: number): Promise<boolean> {
    return this.passes.pass({ name, owner, token, from, to, ttlMs });
  }

  recordFailure(
    name: string,
    holder: { readonly owner: string; readonly token: string },
    position: number,
    error: string,
    maxAttempts: number,
  ): Promise<ProjectionState | null> {
    return recordFailure(this.manager, name, holder, position, error, maxAttempts);
  }

  /** Admin, by projection: every failed segment. */
  retry(projection: string): Promise<boolean> {
    return retry(this.manager, projection);
  }

  /** Admin, by projection: the first failed segment. */
  skip(projection: string): Promise<number | null> {
    return skip(this.dataSource, projection);
  }

  /** Admin, by projection: all of its segments, rebuilt by segment 0's runner. */
  requestRebuild(projection: string): Promise<void> {
    return requestRebuild(this.manager, projection);
  }

  rebuildStarted(manager: EntityManager, name: string): Promise<void> {
    return rebuildStarted(manager, name);
  }

  rebuildAdvanced(manager: EntityManager, name: string, checkpoint: Checkpoint, eventsApplied: number): Promise<void> {
    return rebuildAdvanced(manager, name, checkpoint, eventsApplied);
  }

  rebuildFinished(manager: EntityManager, name: string, liveCheckpoint: Checkpoint | null, error?: string): Promise<void> {
    return rebuildFinished(manager, name, liveCheckpoint, error);
  }

  lockOtherSegments(manager: EntityManager, row: string): Promise<Checkpoint[]> {
    return lockOtherSegments(manager, row);
  }

  alignOtherSegments(manager: EntityManager, row: string, checkpoint: Checkpoint): Promise<void> {
    return alignOtherSegments(manager, row, checkpoint);
  }

  skips(name: string): Promise<Array<{ position: number; eventType: string; error: string | null; skippedAt: Date }>> {
    return skips(this.manager, name);
  }
}
