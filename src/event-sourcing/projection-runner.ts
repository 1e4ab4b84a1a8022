import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { isSameCheckpoint, laterOf } from './checkpoint-order.js';
import type { EventNotifier } from './event-notifier.js';
import type { CommitOrderLog } from './commit-order-log.js';
import { type LeaseHolding, isLeaseLost, runFenced } from './lease-fence.js';
import type { ProjectionCheckpoints, ProjectionState } from './projection-checkpoints.js';
import { ProjectionLease } from './projection-lease.js';
import { ShadowTables } from './projection-shadow.js';
import { type Projection, ProjectionApplyError, applyToProjection, handlesAny } from './projection.js';
import { type Checkpoint, type RecordedEvent, checkpointOf } from './recorded-event.js';

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
  /** Called after every committed batch of the live tables. */
  readonly onAdvance: (name: string, checkpoint: Checkpoint) => void;
}

/** This process no longer holds the lease (or another runner moved the checkpoint): write nothing. */
class LostLease extends Error {}

type Target = 'live' | 'rebuild';
type LiveStep = 'more' | 'held-back' | 'caught-up';

/**
 * Waits while committed events are held back by an older transaction in flight: 5 ms, doubling up
 * to 50 ms (or the poll interval, if shorter). Holders are mostly other runners' batches and
 * appends, done within milliseconds; a long one elsewhere costs a read every 50 ms at most.
 */
const HELD_BACK_FIRST_DELAY_MS = 5;
const HELD_BACK_MAX_DELAY_MS = 50;

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
  /** This process's holding of the lease, renewed by a timer; every write is fenced by its token. */
  private readonly lease: ProjectionLease;
  /** The token `state` was loaded under: a new holding reloads the row. */
  private stateToken?: string;
  /** The projection's row as last read or written by this process; reloaded whenever it may have changed. */
  private state?: ProjectionState;
  /** notifier.projectionsChanged and performance.now() when `state` was last read from its row. */
  private stateLoadedAtChange = 0;
  private stateLoadedAt = 0;
  /** notifier.sequence when this pass's live step read the log: a notification since means "read again". */
  private readAtSequence?: number;
  /** Set when committed events are held back by an older transaction in flight: look again soon. */
  private heldBackDelayMs = 0;
  /** When the live step last read a batch that was neither empty nor full (performance.now()). */
  private partialBatchReadAt = -Infinity;

  constructor(
    readonly projection: Projection,
    private readonly deps: ProjectionRunnerDeps,
  ) {
    this.lease = new ProjectionLease(deps.checkpoints, projection.name, deps.owner, deps.options.leaseTtlMs, deps.logger);
  }

  /** Whether this process holds the projection's lease, as far as it knows. */
  get leader(): boolean {
    return this.lease.held;
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.deps.notifier.emit('appended'); // wake the loop so it sees `stopped`
    await this.loop;
    await this.lease.release().catch(() => undefined);
  }

  private async run(): Promise<void> {
    const { logger, options, notifier } = this.deps;
    while (!this.stopped) {
      try {
        if (!(await this.holdLease())) {
          await this.idle(Math.min(options.pollIntervalMs, options.leaseTtlMs / 3));
          continue;
        }
        if (!this.state || this.stateIsStale()) {
          this.stateLoadedAtChange = notifier.projectionsChanged;
          this.stateLoadedAt = performance.now();
          this.state = await this.load();
        }
        // Only a live step of this pass may let the wait below return at once (see idle).
        this.readAtSequence = undefined;
        let next: LiveStep = 'caught-up';
        if (this.state.rebuild && (await this.guardedRebuildStep(this.state))) next = 'more';
        if (this.projection.mode === 'async' && this.state?.status === 'running') {
          const live = await this.liveStep(this.state);
          if (next !== 'more') next = live;
        }
        if (next === 'more') {
          this.heldBackDelayMs = 0;
        } else if (next === 'held-back') {
          this.heldBackDelayMs =
            this.heldBackDelayMs === 0
              ? HELD_BACK_FIRST_DELAY_MS
              : Math.min(this.heldBackDelayMs * 2, HELD_BACK_MAX_DELAY_MS, options.pollIntervalMs);
          await sleep(this.heldBackDelayMs);
        } else {
          this.heldBackDelayMs = 0;
          // At once when a notification came while this pass's live step was busy after its read.
          const notified = await this.idle(Math.min(options.pollIntervalMs, options.leaseTtlMs / 3), this.readAtSequence);
          if (!notified) this.state = undefined; // quiet for a whole poll: look at the row again anyway
        }
      } catch (error) {
        this.state = undefined;
        if (this.stopped) break;
        if (error instanceof LostLease || isLeaseLost(error)) {
          this.lease.lost();
          continue;
        }
        logger.error(`Projection ${this.projection.name}: ${(error as Error).stack ?? String(error)}`);
        await sleep(options.retryBaseMs);
      }
    }
  }

  /**
   * Whether to read the projection's row again before this pass. It is kept between passes (each
   * batch's commit updates it), and read again when an operator changed a projection (a NOTIFY
   * of its own, from any instance), when it is older than the poll interval (such a NOTIFY can be
   * lost), and on every pass while the projection is not running (waiting for a retry or skip).
   */
  private stateIsStale(): boolean {
    const { notifier, options } = this.deps;
    return (
      this.state?.status !== 'running' ||
      notifier.projectionsChanged !== this.stateLoadedAtChange ||
      performance.now() - this.stateLoadedAt > options.pollIntervalMs
    );
  }

  /** Holds the lease (its timer renews it); a new holding reads the row again. */
  private async holdLease(): Promise<boolean> {
    const held = await this.lease.hold();
    const token = this.lease.current?.token;
    if (token !== this.stateToken) {
      this.stateToken = token;
      this.state = undefined;
    }
    return held;
  }

  /** The holding this step writes under; LostLease when there is none any more. */
  private holding(): LeaseHolding {
    const holding = this.lease.current;
    if (!holding) throw new LostLease();
    return holding;
  }

  private async load(): Promise<ProjectionState> {
    const state = await this.deps.checkpoints.load(this.projection.name);
    if (!state) throw new Error(`No checkpoint row for projection ${this.projection.name}`);
    return state;
  }

  /** The live checkpoint as this process last knew it. */
  get checkpoint(): Checkpoint | undefined {
    return this.state?.checkpoint;
  }

  /** Waits for a notification (true) or `ms` (false); see EventNotifier.waitForAppend for `since`. */
  private async idle(ms: number, since?: number): Promise<boolean> {
    if (this.stopped) return true;
    return this.deps.notifier.waitForAppend(ms, since);
  }

  /**
   * One batch of the live tables, read together with whether later committed events are held back:
   * - 'more': it applied events (more may be readable already), or could not apply them now: look
   *   again at once;
   * - 'held-back': committed events wait behind an older transaction in flight, which may append
   *   nothing and so never notify: look again soon;
   * - 'caught-up': wait for the next notification (or the poll).
   * Within batchWindowMs of a partial batch, it first waits for the rest of the window.
   * A batch with no event the projection handles moves the checkpoint in one fenced statement
   * instead of a transaction (for a deposit, the transfer projections have nothing to do).
   */
  private async liveStep(state: ProjectionState): Promise<LiveStep> {
    const { log, options, notifier } = this.deps;
    const windowLeft = this.partialBatchReadAt + options.batchWindowMs - performance.now();
    if (windowLeft > 0) await sleep(windowLeft);
    this.readAtSequence = notifier.sequence;
    const readAt = performance.now();
    const { events, heldBack } = await log.readBatch(state.checkpoint, options.batchSize);
    this.partialBatchReadAt = events.length > 0 && events.length < options.batchSize ? readAt : -Infinity;
    if (events.length > 0) {
      if (handlesAny(this.projection, events)) await this.applyWithRetries(events, 'live', state.checkpoint);
      else await this.advancePast(events, state.checkpoint);
      // Progress: look again at once, as events committed meanwhile are often readable before
      // their notification arrives (and a wait for held-back ones starts short again).
      return 'more';
    }
    return heldBack ? 'held-back' : 'caught-up';
  }

  /** Moves the live checkpoint past events that change nothing in this projection. */
  private async advancePast(events: readonly RecordedEvent[], from: Checkpoint): Promise<boolean> {
    const { checkpoints, options, owner } = this.deps;
    const checkpoint = checkpointOf(events[events.length - 1]);
    if (!(await checkpoints.advancePast(this.projection.name, owner, this.holding().token, from, checkpoint, options.leaseTtlMs))) {
      // Not ours to move any more (lease lost, or an operator or another runner changed the row).
      this.lease.lost();
      this.state = undefined;
      return false;
    }
    this.state = { ...this.state!, checkpoint, attempts: 0 };
    this.deps.onAdvance(this.projection.name, checkpoint);
    return true;
  }

  /**
   * A rebuild step whose unexpected errors (not a projection's own failure, e.g. SQL of the swap)
   * count as rebuild attempts, so they end in an abandoned rebuild rather than a loop that also keeps
   * the live step from running.
   */
  private async guardedRebuildStep(state: ProjectionState): Promise<boolean> {
    try {
      return await this.rebuildStep(state);
    } catch (error) {
      if (error instanceof LostLease) throw error;
      this.state = undefined;
      this.rebuildAttempts++;
      const message = error instanceof Error ? error.message : String(error);
      this.deps.logger.warn(`Projection ${this.projection.name} rebuild, attempt ${this.rebuildAttempts}: ${message}`);
      if (this.rebuildAttempts >= this.deps.options.maxAttempts) await this.abandonRebuild(message);
      else await sleep(this.backoff(this.rebuildAttempts));
      return true;
    }
  }

  /** One step of a rebuild: prepare the shadow tables, apply a batch to them, or swap them in. */
  private async rebuildStep(state: ProjectionState): Promise<boolean> {
    const { dataSource, checkpoints, options, owner, logger } = this.deps;
    const rebuild = state.rebuild!;
    this.shadow ??= await ShadowTables.forProjection(dataSource.manager, this.projection);
    if (rebuild.status === 'requested') {
      const { token } = this.holding();
      await dataSource.transaction(async (manager) => {
        if (!(await checkpoints.lockIfLeader(manager, this.projection.name, owner, token))) throw new LostLease();
        await this.shadow!.create(manager);
        await checkpoints.rebuildStarted(manager, this.projection.name);
      });
      this.rebuildAttempts = 0;
      this.state = undefined;
      logger.log(`Projection ${this.projection.name}: rebuild started`);
      return true;
    }
    const { events } = await this.deps.log.readAll(rebuild.checkpoint, options.batchSize);
    if (events.length > 0) {
      const applied = await this.applyWithRetries(events, 'rebuild', rebuild.checkpoint);
      if (!applied || events.length === options.batchSize) return true;
    }
    await this.swap();
    this.state = undefined;
    return true;
  }

  /**
   * Applies a batch in one transaction. When it fails at event k, the events before k are committed
   * (a projection applying whole batches at once is retried event by event to find k), then a failed
   * attempt is counted at k with backoff; for a rebuild, too many failures give the rebuild up.
   * True when every event was applied.
   */
  private async applyWithRetries(events: readonly RecordedEvent[], target: Target, from: Checkpoint): Promise<boolean> {
    let failure: ProjectionApplyError;
    try {
      await this.commit(events, target, from);
      if (target === 'rebuild') this.rebuildAttempts = 0;
      return true;
    } catch (error) {
      if (error instanceof LostLease) {
        this.lease.lost();
        this.state = undefined;
        return false;
      }
      if (!(error instanceof ProjectionApplyError)) throw error;
      failure = error;
    }
    if (failure.index === undefined) {
      // Which event failed is unknown: go one event at a time; the failing one lands below.
      let checkpoint = from;
      for (const event of events) {
        try {
          await this.commit([event], target, checkpoint);
        } catch (error) {
          if (!(error instanceof ProjectionApplyError)) throw error;
          await this.countFailure(event, error, target);
          return false;
        }
        checkpoint = { transactionId: event.transactionId, position: event.position };
      }
      return true; // every event passed on its own (the batch failure did not repeat)
    }
    if (failure.index > 0 && !this.reacts) {
      // Commit what precedes the failing event (a reaction has done so itself); it is tried again
      // from there on the next loop.
      if (!(await this.applyWithRetries(events.slice(0, failure.index), target, from))) return false;
    }
    await this.countFailure(events[failure.index], failure, target);
    return false;
  }

  private async countFailure(failed: RecordedEvent, failure: ProjectionApplyError, target: Target): Promise<void> {
    const { checkpoints, options, logger } = this.deps;
    const message = `${failed.type} at position ${failed.position}: ${failure.message}`;
    this.state = undefined;
    if (target === 'rebuild') {
      this.rebuildAttempts++;
      logger.warn(`Projection ${this.projection.name} rebuild, attempt ${this.rebuildAttempts}: ${message}`);
      if (this.rebuildAttempts >= options.maxAttempts) await this.abandonRebuild(message);
      else await sleep(this.backoff(this.rebuildAttempts));
      return;
    }
    const state = await checkpoints.recordFailure(this.projection.name, failed.position, failure.message, options.maxAttempts);
    if (state.status === 'failed') {
      logger.error(`Projection ${this.projection.name} stopped after ${state.attempts} attempts: ${message}`);
    } else {
      logger.warn(`Projection ${this.projection.name}, attempt ${state.attempts}: ${message}`);
      await sleep(this.backoff(state.attempts));
    }
  }

  private backoff(attempts: number): number {
    return Math.min(this.deps.options.retryBaseMs * 2 ** (attempts - 1), 30_000);
  }

  /** A process manager: no table of its own, it reacts with commands (see commitReaction). */
  private get reacts(): boolean {
    return this.projection.tables.length === 0;
  }

  private async commit(events: readonly RecordedEvent[], target: Target, from: Checkpoint): Promise<void> {
    if (this.reacts) return this.commitReaction(events, from);
    const { dataSource, checkpoints, options, owner } = this.deps;
    const last = events[events.length - 1];
    const checkpoint = { transactionId: last.transactionId, position: last.position };
    const { token } = this.holding();
    await dataSource.transaction(async (manager) => {
      const state = await checkpoints.lockIfLeader(manager, this.projection.name, owner, token);
      const current = target === 'live' ? state?.checkpoint : state?.rebuild?.checkpoint;
      // Fencing: only the lease holder, continuing exactly where the stored checkpoint is (and, live,
      // while the projection runs: an operator may have changed the row since it was read), may write.
      if (!current || !isSameCheckpoint(current, from) || (target === 'live' && state!.status !== 'running')) throw new LostLease();
      if (target === 'rebuild') await this.shadow!.use(manager);
      await applyToProjection(this.projection, events, manager);
      if (target === 'live') await checkpoints.advance(manager, this.projection.name, checkpoint, options.leaseTtlMs);
      else await checkpoints.rebuildAdvanced(manager, this.projection.name, checkpoint, events.length);
      // What this transaction leaves in the row, so the next batch needs no reload.
      this.state =
        target === 'live'
          ? { ...state!, checkpoint, attempts: 0 }
          : { ...state!, rebuild: { ...state!.rebuild!, checkpoint, eventsApplied: state!.rebuild!.eventsApplied + events.length } };
    });
    if (target === 'live') this.deps.onAdvance(this.projection.name, checkpoint);
  }

  /**
   * A projection that keeps no table (a process manager) reacts with commands of its own, each in its
   * own transaction. Those run outside the checkpoint transaction: that one locks the checkpoint row,
   * which gives it a transaction id, and commit-safe readers wait for every older transaction id — a
   * long step inside it would hold every projection back. The checkpoint then advances in a short
   * fenced transaction.
   *
   * Every step is fenced: the reaction runs with this holding ambient (runFenced), and each of its
   * transactions commits only if the database still sees this holding (ledger_fence, just before
   * COMMIT). A holder that lost the lease, even one paused past it that does not know yet, commits
   * nothing; the next holder resumes from the checkpoint. Events are reacted to one at a time and the
   * batch stops after a third of the lease, so the checkpoint moves often and a takeover has little
   * to redo. At-least-once between a step and the checkpoint (a crash there repeats the steps), which
   * is why a process manager's steps must be idempotent.
   * A failure at event k advances the checkpoint past the events before it, then throws for k.
   */
  private async commitReaction(events: readonly RecordedEvent[], from: Checkpoint): Promise<void> {
    const { dataSource, checkpoints, options, owner } = this.deps;
    const holding = this.holding();
    // A cheap look first (no lock): the fenced steps and the fenced advance below are what decide.
    const before = await checkpoints.load(this.projection.name);
    if (
      before?.leaseOwner !== owner ||
      before.leaseToken !== holding.token ||
      before.status !== 'running' ||
      !isSameCheckpoint(before.checkpoint, from)
    ) {
      throw new LostLease();
    }
    const deadline = performance.now() + options.leaseTtlMs / 3;
    let done = 0;
    let failure: ProjectionApplyError | undefined;
    for (const event of events) {
      if (done > 0 && (performance.now() >= deadline || this.lease.current !== holding || this.stopped)) break;
      try {
        await runFenced(holding, () => applyToProjection(this.projection, [event], dataSource.manager));
      } catch (error) {
        if (isLeaseLost(error)) throw new LostLease();
        if (!(error instanceof ProjectionApplyError)) throw error;
        failure = new ProjectionApplyError(done, error.error);
        break;
      }
      done++;
    }
    if (done > 0) {
      const last = events[done - 1];
      const checkpoint = { transactionId: last.transactionId, position: last.position };
      await dataSource.transaction(async (manager) => {
        const state = await checkpoints.lockIfLeader(manager, this.projection.name, owner, holding.token);
        if (!state || !isSameCheckpoint(state.checkpoint, from) || state.status !== 'running') throw new LostLease();
        await checkpoints.advance(manager, this.projection.name, checkpoint, options.leaseTtlMs);
        this.state = { ...state, checkpoint, attempts: 0 };
      });
      this.deps.onAdvance(this.projection.name, checkpoint);
    }
    if (failure) throw failure;
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
      const { token } = this.holding();
      await dataSource.transaction(async (manager) => {
        const state = await checkpoints.lockIfLeader(manager, this.projection.name, owner, token);
        if (!state?.rebuild) throw new LostLease();
        let until: Checkpoint | undefined;
        if (this.projection.mode === 'inline') {
          await manager.query(`LOCK TABLE ${this.shadow!.liveTables()} IN EXCLUSIVE MODE`);
        } else {
          until = laterOf(state.checkpoint, state.rebuild.checkpoint);
        }
        const remaining = await this.deps.log.readCommitted(state.rebuild.checkpoint, until, manager);
        await this.shadow!.use(manager);
        await applyToProjection(this.projection, remaining, manager);
        await this.shadow!.replaceLive(manager); // qualified names: the search_path does not matter
        applied = state.rebuild.eventsApplied + remaining.length;
        await checkpoints.rebuildFinished(manager, this.projection.name, until ?? null);
      });
    } catch (error) {
      if (error instanceof LostLease) {
        this.lease.lost();
        return;
      }
      if (error instanceof ProjectionApplyError) {
        this.rebuildAttempts++;
        if (this.rebuildAttempts >= this.deps.options.maxAttempts) await this.abandonRebuild(error.message);
        else await sleep(this.backoff(this.rebuildAttempts));
        return;
      }
      throw error;
    }
    const live = await this.load();
    this.deps.onAdvance(this.projection.name, live.checkpoint);
    logger.log(`Projection ${this.projection.name}: rebuilt from ${applied} events and swapped in`);
  }

  private async abandonRebuild(reason: string): Promise<void> {
    this.deps.logger.error(`Projection ${this.projection.name}: rebuild abandoned: ${reason}`);
    try {
      await this.deps.dataSource.transaction((manager) => this.shadow!.drop(manager));
    } catch (error) {
      // Recorded all the same: an abandoned rebuild must show its reason even when its copies cannot go.
      reason = `${reason}; its copies could not be dropped: ${(error as Error).message}`;
    }
    await this.deps.dataSource.transaction((manager) =>
      this.deps.checkpoints.rebuildFinished(manager, this.projection.name, null, `rebuild abandoned: ${reason}`),
    );
    this.rebuildAttempts = 0;
  }
}
