import type { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { EventNotifier } from './event-notifier.js';
import type { CommitOrderLog } from './commit-order-log.js';
import type { LeaseHolding } from './lease-fence.js';
import type { ProjectionCheckpoints, ProjectionState } from './projection-checkpoints.js';
import { ProjectionLease } from './projection-lease.js';
import type { ShadowTables } from './projection-shadow.js';
import type { SegmentShare } from './projection-ownership.js';
import type { IdleSegmentTick } from './segment-wake-ups.js';
import type { Segment } from './projection-segments.js';
import type { Projection } from './projection.js';
import { type Subscriber, isProcessManager } from './subscriber.js';
import type { Checkpoint } from './recorded-event.js';

export interface ProjectionRunnerOptions {
  /** How long a runner waits for a NOTIFY before looking at the log anyway. */
  readonly pollIntervalMs: number;
  readonly batchSize: number;
  /**
   * A runner reads its next batch no sooner than this after it read the last one: a steady stream
   * of events is applied a few at a time instead of one transaction per event (fewer round trips
   * and commits), for at most this much more lag. A first event after a quiet spell, and a backlog
   * (full batches), go at once.
   */
  readonly batchWindowMs: number;
  /**
   * An append wakes at once only the segments with something of their own to apply in it (an event
   * the projection handles, whose key falls in the segment). The others move their checkpoints past
   * it this much later, together with every other append of the meantime (0: at once, as the owner).
   * A query waiting on the projection hurries them (ProjectionWaiter).
   */
  readonly idleSegmentDelayMs?: number;
  /** Attempts at one event before the projection stops in `failed`. */
  readonly maxAttempts: number;
  /** First retry delay; doubles with every attempt. */
  readonly retryBaseMs: number;
  /**
   * How long leadership lasts without renewal: how soon another process takes over after a crash.
   * The holder renews it every third of this while it lives; a process manager's batch also stops
   * after a third of it, so its checkpoint moves at least that often.
   */
  readonly leaseTtlMs: number;
  /**
   * A process manager: how many keys of a batch (transfers) it reacts to at once, each key's events
   * still in order (reaction-lanes.ts). Absent or 1: one event at a time.
   */
  readonly reactionConcurrency?: number;
}

export interface ProjectionRunnerDeps {
  readonly dataSource: DataSource;
  readonly log: CommitOrderLog;
  readonly checkpoints: ProjectionCheckpoints;
  readonly notifier: EventNotifier;
  readonly options: ProjectionRunnerOptions;
  /** Identifies this process in lease rows. */
  readonly owner: string;
  readonly logger: Logger;
  /** Called after every committed batch of the live tables (with the projection's name). */
  readonly onAdvance: (name: string, checkpoint: Checkpoint) => void;
  /** The segments of this projection this process holds, against its fair share. */
  readonly share: SegmentShare;
  /** The process's one timer for segments with only others' events to pass (absent: no delay). */
  readonly idleTick?: IdleSegmentTick;
}

/** This process no longer holds the lease (or another runner moved the checkpoint): write nothing. */
export class LostLease extends Error {}

export type Target = 'live' | 'rebuild';

/**
 * What one segment's runner knows and shares between its jobs (the live loop, applying batches,
 * reactions, rebuilds): its lease, its row as last seen, its rebuild's shadow tables and attempts.
 * Every statement on the checkpoint table names the segment's row (`row`); progress is announced
 * under the projection's name.
 */
export class RunnerContext {
  stopped = false;
  shadow?: ShadowTables;
  rebuildAttempts = 0;
  /** This process's holding of the lease, renewed by a timer; every write is fenced by its token. */
  readonly lease: ProjectionLease;
  /** The projection's row as last read or written by this process; reloaded whenever it may have changed. */
  state?: ProjectionState;

  constructor(
    /** A projection or a process manager (the runner's other jobs read it through readModel()). */
    readonly projection: Subscriber,
    readonly segment: Segment,
    readonly deps: ProjectionRunnerDeps,
  ) {
    this.lease = new ProjectionLease(deps.checkpoints, segment.row, deps.owner, deps.options.leaseTtlMs, deps.logger);
  }

  /** The key of this segment's checkpoint row. */
  get row(): string {
    return this.segment.row;
  }

  /** The holding this step writes under; LostLease when there is none any more. */
  holding(): LeaseHolding {
    const holding = this.lease.current;
    if (!holding) throw new LostLease();
    return holding;
  }

  async load(): Promise<ProjectionState> {
    const state = await this.deps.checkpoints.load(this.row);
    if (!state) throw new Error(`No checkpoint row ${this.row} for projection ${this.projection.name}`);
    return state;
  }

  backoff(attempts: number): number {
    return Math.min(this.deps.options.retryBaseMs * 2 ** (attempts - 1), 30_000);
  }

  /** The projection, for the jobs only a read model has (applying in a transaction, rebuilds). */
  readModel(): Projection {
    if (isProcessManager(this.projection)) {
      throw new Error(`${this.projection.name} is a process manager: it has no table to apply to or rebuild`);
    }
    return this.projection;
  }
}
