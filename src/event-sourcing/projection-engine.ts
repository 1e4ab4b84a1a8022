import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { type BeforeApplicationShutdown, Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { EventNotifier, PROJECTIONS_CHANGED } from './event-notifier.js';
import { CommitOrderLog } from './commit-order-log.js';
import { EventTypeRegistry } from './event-type.registry.js';
import { ProjectionCheckpoints } from './projection-checkpoints.js';
import { InstanceHeartbeat, SegmentShare } from './projection-ownership.js';
import { ProjectionRunner, type ProjectionRunnerOptions } from './projection-runner.js';
import { ensureSegmentLayout } from './projection-segment-layout.js';
import { IdleSegmentTick } from './segment-wake-ups.js';
import { type SegmentCounts, segmentCountFor, segmentsOf } from './projection-segments.js';
import { ProjectionRegistry } from './projection.registry.js';
import { type Subscriber, modeOf } from './subscriber.js';
import { StoredSchemaCheck } from './stored-schema-check.js';
import type { Checkpoint } from './recorded-event.js';
import { PROJECTOR_DATA_SOURCE } from './data-sources.js';

export const PROJECTION_ENGINE_OPTIONS = Symbol('PROJECTION_ENGINE_OPTIONS');

export interface ProjectionEngineOptions extends ProjectionRunnerOptions {
  /** Off: this process serves requests but runs no projection (another process does). */
  readonly enabled: boolean;
  /** At most one cross-instance wake-up per this many ms after appends (see EventNotifier). */
  readonly wakeSignalMs?: number;
  /** Segments per async projection (absent: one each; inline projections always have one). */
  readonly segments?: SegmentCounts;
  /**
   * False: never re-split a projection stored with another count, run the stored count instead (the
   * CLI: a tool must not change, or refuse, the running service's layout).
   */
  readonly changeLayout?: boolean;
}

/**
 * Starts a runner per segment of each projection when the application boots and stops them on
 * shutdown. Every process runs the loops, but only the holder of a segment's lease applies its
 * events, so several instances of the service on one database never apply an event twice; each
 * process takes a fair share of a projection's segments (projection-ownership.ts).
 */
@Injectable()
export class ProjectionEngine implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ProjectionEngine.name);
  private readonly runners = new Map<string, ProjectionRunner[]>();
  private heartbeat?: InstanceHeartbeat;
  /** 'advanced' (name, checkpoint) after each batch this process commits. */
  readonly progress = new EventEmitter().setMaxListeners(0);
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;

  constructor(
    private readonly registry: ProjectionRegistry,
    private readonly checkpoints: ProjectionCheckpoints,
    private readonly notifier: EventNotifier,
    @Inject(PROJECTOR_DATA_SOURCE) private readonly dataSource: DataSource,
    private readonly types: EventTypeRegistry,
    private readonly schemaCheck: StoredSchemaCheck,
    @Inject(PROJECTION_ENGINE_OPTIONS) private readonly options: ProjectionEngineOptions,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.schemaCheck.assertReadable(); // nothing reads the log before this passes
    const projections = this.registry.all();
    // The log is read through the projector's own connection (and role), like its writes.
    const log = new CommitOrderLog(this.dataSource, this.types);
    const counts = new Map<string, number>();
    const mayChange = this.options.enabled && this.options.changeLayout !== false;
    for (const projection of projections) {
      counts.set(
        projection.name,
        await ensureSegmentLayout(this.dataSource, log, this.logger, projection, this.segmentCount(projection), mayChange),
      );
    }
    await this.notifier.start({ wakeSignalMs: this.options.wakeSignalMs }); // also wakes live feeds, which run whether projections do or not
    if (!this.options.enabled) return;
    const heartbeat = (this.heartbeat = new InstanceHeartbeat(
      this.dataSource,
      this.owner,
      projections.map((projection) => projection.name),
      this.options.leaseTtlMs,
      this.logger,
    ));
    await heartbeat.start();
    const idleTick = this.options.idleSegmentDelayMs ? new IdleSegmentTick(this.options.idleSegmentDelayMs) : undefined;
    for (const projection of projections) {
      const count = counts.get(projection.name)!;
      const share = new SegmentShare(count, () => heartbeat.liveInstances(projection.name));
      const runners = segmentsOf(projection.name, count).map(
        (segment) =>
          new ProjectionRunner(projection, segment, {
            dataSource: this.dataSource,
            log,
            checkpoints: this.checkpoints,
            notifier: this.notifier,
            options: this.options,
            owner: this.owner,
            logger: this.logger,
            onAdvance: (name: string, checkpoint: Checkpoint) => this.progress.emit('advanced', name, checkpoint),
            share,
            idleTick,
          }),
      );
      this.runners.set(projection.name, runners);
      for (const runner of runners) runner.start();
    }
  }

  /** Segments of a projection here: the configured count for an async one, one for an inline one. */
  segmentCount(projection: Subscriber): number {
    return modeOf(projection) === 'inline' ? 1 : segmentCountFor(this.options.segments, projection.name);
  }

  /** Before the DataSource closes (TypeORM does that in onApplicationShutdown), so leases are released. */
  async beforeApplicationShutdown(): Promise<void> {
    await Promise.all([...this.runners.values()].flat().map((runner) => runner.stop()));
    this.runners.clear();
    await this.heartbeat?.stop();
    await this.notifier.stop();
  }

  /** Whether this process currently runs the projection (any of its segments). */
  isLeader(name: string): boolean {
    return this.runners.get(name)?.some((runner) => runner.leader) ?? false;
  }

  /** Whether this process runs every segment of the projection (no other instance to ask). */
  holdsAll(name: string): boolean {
    return this.runners.get(name)?.every((runner) => runner.leader) ?? false;
  }

  /**
   * For `forMs`, every append wakes this process's runners of the projection at once, not only the
   * segments it concerns: a query waits for the projection as a whole (ProjectionWaiter).
   */
  hurry(name: string, forMs: number): void {
    for (const runner of this.runners.get(name) ?? []) runner.hurry(forMs);
  }

  /** The segments of the projection this process holds now, as far as it knows. */
  heldSegments(name: string): number[] {
    return (this.runners.get(name) ?? []).filter((runner) => runner.leader).map((runner) => runner.segment.index);
  }

  /**
   * Wakes the runners of every process at once (after an admin call changed a projection's state),
   * telling them to reload their projection's row: the runner may live in another instance.
   */
  async wake(): Promise<void> {
    this.notifier.notify(true);
    await this.dataSource.query(`SELECT pg_notify('events_appended', $1)`, [PROJECTIONS_CHANGED]);
  }
}
