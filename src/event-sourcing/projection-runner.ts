import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { isSameCheckpoint, laterOf } from './checkpoint-order.js';
import type { EventNotifier } from './event-notifier.js';
import type { EventStore } from './event-store.js';
import type { ProjectionCheckpoints, ProjectionState } from './projection-checkpoints.js';
import { ShadowTables } from './projection-shadow.js';
import type { Projection } from './projection.js';
import type { Checkpoint, RecordedEvent } from './recorded-event.js';

export interface ProjectionRunnerOptions {
  /** How long a runner waits for a NOTIFY before looking at the log anyway. */
  readonly pollIntervalMs: number;
  readonly batchSize: number;
  /** Attempts at one event before the projection stops in `failed`. */
  readonly maxAttempts: number;
  /** First retry delay; doubles with every attempt. */
  readonly retryBaseMs: number;
  /** How long leadership lasts without renewal: how soon another process takes over after a crash. */
  readonly leaseTtlMs: number;
}

export interface ProjectionRunnerDeps {
  readonly dataSource: DataSource;
  readonly store: EventStore;
  readonly checkpoints: ProjectionCheckpoints;
  readonly notifier: EventNotifier;
  readonly options: ProjectionRunnerOptions;
  /** Identifies this process in lease rows. */
  readonly owner: string;
  readonly logger: Logger;
  /** Called after every committed batch of the live tables. */
  readonly onAdvance: (name: string, checkpoint: Checkpoint) => void;
}

/** This process no longer holds the lease (or another runner moved the checkpoint): write nothing. */
class LostLease extends Error {}

/** A handler threw at events[index]; everything before it can still be committed. */
class HandlerFailed extends Error {
  constructor(
    readonly index: number,
    readonly error: unknown,
  ) {
    super(error instanceof Error ? error.message : String(error));
  }
}

type Target = 'live' | 'rebuild';

/**
 * Runs one projection in this process, when this process holds its lease:
 * - async projections: read the log after the checkpoint in commit order, apply a batch and advance
 *   the checkpoint in one transaction (a crash anywhere leaves either all of it or none of it);
 * - any projection: carry out a requested rebuild into shadow tables, batch by batch, then swap.
 * A handler that throws is retried with backoff; after maxAttempts the projection stops in `failed`
 * with the event's position, and only an operator's retry or skip moves it again.
 */
export class ProjectionRunner {
  private stopped = false;
  private loop?: Promise<void>;
  private shadow?: ShadowTables;
  private rebuildAttempts = 0;
  leader = false;
  /** The live checkpoint as of the last batch this process committed or read. */
  checkpoint?: Checkpoint;

  constructor(
    readonly projection: Projection,
    private readonly deps: ProjectionRunnerDeps,
  ) {}

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.deps.notifier.emit('appended'); // wake the loop so it sees `stopped`
    await this.loop;
    if (this.leader) await this.deps.checkpoints.releaseLease(this.projection.name, this.deps.owner).catch(() => undefined);
    this.leader = false;
  }

  private async run(): Promise<void> {
    const { checkpoints, options, owner, logger } = this.deps;
    while (!this.stopped) {
      try {
        this.leader = await checkpoints.tryAcquireLease(this.projection.name, owner, options.leaseTtlMs);
        if (!this.leader) {
          await this.idle(Math.min(options.pollIntervalMs, options.leaseTtlMs / 3));
          continue;
        }
        const state = await checkpoints.load(this.projection.name);
        if (!state) throw new Error(`No checkpoint row for projection ${this.projection.name}`);
        this.checkpoint = state.checkpoint;
        let worked = false;
        if (state.rebuild) worked = await this.rebuildStep(state);
        if (this.projection.mode === 'async' && state.status === 'running') worked = (await this.liveStep(state)) || worked;
        if (!worked) await this.idle(Math.min(options.pollIntervalMs, options.leaseTtlMs / 3));
      } catch (error) {
        if (this.stopped) break;
        logger.error(`Projection ${this.projection.name}: ${(error as Error).stack ?? String(error)}`);
        await sleep(options.retryBaseMs);
      }
    }
  }

  private async idle(ms: number): Promise<void> {
    if (!this.stopped) await this.deps.notifier.waitForAppend(ms);
  }

  /** One batch of the live tables. True when there was something to do. */
  private async liveStep(state: ProjectionState): Promise<boolean> {
    const { events } = await this.deps.store.readAll(state.checkpoint, this.deps.options.batchSize);
    if (events.length === 0) return false;
    await this.applyWithRetries(events, 'live', state.checkpoint, state.attempts);
    return true;
  }

  /** One step of a rebuild: prepare the shadow tables, apply a batch to them, or swap them in. */
  private async rebuildStep(state: ProjectionState): Promise<boolean> {
    const { dataSource, checkpoints, options, owner, logger } = this.deps;
    const rebuild = state.rebuild!;
    this.shadow ??= await ShadowTables.forProjection(dataSource.manager, this.projection);
    if (rebuild.status === 'requested') {
      await dataSource.transaction(async (manager) => {
        if (!(await checkpoints.lockIfLeader(manager, this.projection.name, owner))) throw new LostLease();
        await this.shadow!.create(manager);
        await checkpoints.rebuildStarted(manager, this.projection.name);
      });
      this.rebuildAttempts = 0;
      logger.log(`Projection ${this.projection.name}: rebuild started`);
      return true;
    }
    const { events } = await this.deps.store.readAll(rebuild.checkpoint, options.batchSize);
    if (events.length > 0) {
      await this.applyWithRetries(events, 'rebuild', rebuild.checkpoint, this.rebuildAttempts);
      if (events.length === options.batchSize) return true;
    }
    await this.swap();
    return true;
  }

  /**
   * Applies a batch in one transaction; when a handler throws at event k, commits events before k,
   * then counts a failed attempt at k and backs off (or, for a rebuild, gives the rebuild up).
   */
  private async applyWithRetries(events: readonly RecordedEvent[], target: Target, from: Checkpoint, attempts: number): Promise<void> {
    const { checkpoints, options, logger } = this.deps;
    try {
      await this.commit(events, target, from);
      if (target === 'rebuild') this.rebuildAttempts = 0;
    } catch (error) {
      if (error instanceof LostLease) {
        this.leader = false;
        return;
      }
      if (!(error instanceof HandlerFailed)) throw error;
      if (error.index > 0) {
        await this.applyWithRetries(events.slice(0, error.index), target, from, attempts);
        return; // the failing event is retried from the new checkpoint, on the next loop
      }
      const failed = events[0];
      const message = `${failed.type} at position ${failed.position}: ${error.message}`;
      if (target === 'rebuild') {
        this.rebuildAttempts++;
        logger.warn(`Projection ${this.projection.name} rebuild, attempt ${this.rebuildAttempts}: ${message}`);
        if (this.rebuildAttempts >= options.maxAttempts) await this.abandonRebuild(message);
        else await sleep(this.backoff(this.rebuildAttempts));
        return;
      }
      const state = await checkpoints.recordFailure(this.projection.name, failed.position, error.message, options.maxAttempts);
      if (state.status === 'failed') {
        logger.error(`Projection ${this.projection.name} stopped after ${state.attempts} attempts: ${message}`);
      } else {
        logger.warn(`Projection ${this.projection.name}, attempt ${state.attempts}: ${message}`);
        await sleep(this.backoff(state.attempts));
      }
    }
  }

  private backoff(attempts: number): number {
    return Math.min(this.deps.options.retryBaseMs * 2 ** (attempts - 1), 30_000);
  }

  private async commit(events: readonly RecordedEvent[], target: Target, from: Checkpoint): Promise<void> {
    const { dataSource, checkpoints, options, owner } = this.deps;
    const last = events[events.length - 1];
    const checkpoint = { transactionId: last.transactionId, position: last.position };
    await dataSource.transaction(async (manager) => {
      const state = await checkpoints.lockIfLeader(manager, this.projection.name, owner);
      const current = target === 'live' ? state?.checkpoint : state?.rebuild?.checkpoint;
      // Fencing: only the lease holder, continuing exactly where the stored checkpoint is, may write.
      if (!current || !isSameCheckpoint(current, from)) throw new LostLease();
      if (target === 'rebuild') await this.shadow!.use(manager);
      await this.apply(events, manager);
      if (target === 'live') await checkpoints.advance(manager, this.projection.name, checkpoint, options.leaseTtlMs);
      else await checkpoints.rebuildAdvanced(manager, this.projection.name, checkpoint, events.length);
    });
    if (target === 'live') {
      this.checkpoint = checkpoint;
      this.deps.onAdvance(this.projection.name, checkpoint);
    }
  }

  private async apply(events: readonly RecordedEvent[], manager: EntityManager): Promise<void> {
    for (const [index, event] of events.entries()) {
      const handler = this.projection.handlers.handlerFor(event);
      if (!handler) continue;
      try {
        await handler(event, manager);
      } catch (error) {
        throw new HandlerFailed(index, error);
      }
    }
  }

  /**
   * The rebuilt copy has caught up with the head of the log: in one transaction, bring it exactly to
   * the point the live tables are at, replace the live content with it, and move the live checkpoint.
   * - async: the checkpoint row lock pauses the live runner; the copy is brought to the later of the
   *   two checkpoints, which becomes the live checkpoint: nothing is skipped or applied twice;
   * - inline: an EXCLUSIVE lock on the live tables holds appends back (readers go on), and every
   *   committed event not yet in the copy is applied to it.
   */
  private async swap(): Promise<void> {
    const { dataSource, checkpoints, owner, logger } = this.deps;
    let applied = 0;
    try {
      await dataSource.transaction(async (manager) => {
        const state = await checkpoints.lockIfLeader(manager, this.projection.name, owner);
        if (!state?.rebuild) throw new LostLease();
        let until: Checkpoint | undefined;
        if (this.projection.mode === 'inline') {
          await manager.query(`LOCK TABLE ${this.shadow!.liveTables()} IN EXCLUSIVE MODE`);
        } else {
          until = laterOf(state.checkpoint, state.rebuild.checkpoint);
        }
        const remaining = await this.deps.store.readCommitted(state.rebuild.checkpoint, until, manager);
        await this.shadow!.use(manager);
        await this.apply(remaining, manager);
        await this.shadow!.replaceLive(manager); // qualified names: the search_path does not matter
        applied = state.rebuild.eventsApplied + remaining.length;
        await checkpoints.rebuildFinished(manager, this.projection.name, until ?? null);
        if (until) this.checkpoint = until;
      });
    } catch (error) {
      if (error instanceof LostLease) {
        this.leader = false;
        return;
      }
      if (error instanceof HandlerFailed) {
        this.rebuildAttempts++;
        if (this.rebuildAttempts >= this.deps.options.maxAttempts) await this.abandonRebuild(error.message);
        else await sleep(this.backoff(this.rebuildAttempts));
        return;
      }
      throw error;
    }
    if (this.checkpoint) this.deps.onAdvance(this.projection.name, this.checkpoint);
    logger.log(`Projection ${this.projection.name}: rebuilt from ${applied} events and swapped in`);
  }

  private async abandonRebuild(reason: string): Promise<void> {
    this.deps.logger.error(`Projection ${this.projection.name}: rebuild abandoned: ${reason}`);
    await this.deps.dataSource.transaction(async (manager) => {
      await this.shadow!.drop(manager);
      await this.deps.checkpoints.rebuildFinished(manager, this.projection.name, null, `rebuild abandoned: ${reason}`);
    });
    this.rebuildAttempts = 0;
  }
}
