import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { type BeforeApplicationShutdown, Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { EventNotifier, PROJECTIONS_CHANGED } from './event-notifier.js';
import { CommitOrderLog } from './commit-order-log.js';
import { EventTypeRegistry } from './event-type.registry.js';
import { ProjectionCheckpoints } from './projection-checkpoints.js';
import { ProjectionRunner, type ProjectionRunnerOptions } from './projection-runner.js';
import { ProjectionRegistry } from './projection.registry.js';
import { StoredSchemaCheck } from './stored-schema-check.js';
import type { Checkpoint } from './recorded-event.js';
import { PROJECTOR_DATA_SOURCE } from './data-sources.js';

export const PROJECTION_ENGINE_OPTIONS = Symbol('PROJECTION_ENGINE_OPTIONS');

export interface ProjectionEngineOptions extends ProjectionRunnerOptions {
  /** Off: this process serves requests but runs no projection (another process does). */
  readonly enabled: boolean;
  /** At most one cross-instance wake-up per this many ms after appends (see EventNotifier). */
  readonly wakeSignalMs?: number;
}

/**
 * Starts a runner per projection when the application boots and stops them on shutdown. Every
 * process runs the loop, but only the holder of a projection's lease applies events, so several
 * instances of the service on one database never apply an event twice.
 */
@Injectable()
export class ProjectionEngine implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ProjectionEngine.name);
  private readonly runners = new Map<string, ProjectionRunner>();
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
    await this.checkpoints.ensure(projections.map((projection) => projection.name));
    await this.notifier.start({ wakeSignalMs: this.options.wakeSignalMs }); // also wakes live feeds, which run whether projections do or not
    if (!this.options.enabled) return;
    for (const projection of projections) {
      const runner = new ProjectionRunner(projection, {
        dataSource: this.dataSource,
        // The log is read through the projector's own connection (and role), like its writes.
        log: new CommitOrderLog(this.dataSource, this.types),
        checkpoints: this.checkpoints,
        notifier: this.notifier,
        options: this.options,
        owner: this.owner,
        logger: this.logger,
        onAdvance: (name: string, checkpoint: Checkpoint) => this.progress.emit('advanced', name, checkpoint),
      });
      this.runners.set(projection.name, runner);
      runner.start();
    }
  }

  /** Before the DataSource closes (TypeORM does that in onApplicationShutdown), so leases are released. */
  async beforeApplicationShutdown(): Promise<void> {
    await Promise.all([...this.runners.values()].map((runner) => runner.stop()));
    this.runners.clear();
    await this.notifier.stop();
  }

  /** Whether this process currently runs the projection. */
  isLeader(name: string): boolean {
    return this.runners.get(name)?.leader ?? false;
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
