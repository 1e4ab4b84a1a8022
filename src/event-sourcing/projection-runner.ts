import { setTimeout as sleep } from 'node:timers/promises';
import { isSameCheckpoint } from './checkpoint-order.js';
import { isLeaseLost } from './lease-fence.js';
import { applyWithRetries } from './projection-apply-batch.js';
import type { ProjectionState } from './projection-checkpoints.js';
import { guardedRebuildStep } from './projection-rebuild.js';
import { LostLease, RunnerContext, type ProjectionRunnerDeps } from './projection-runner-context.js';
import { sharedReadBatch } from './projection-runner-shared-reads.js';
import type { Segment } from './projection-segments.js';
import { segmentOfKey } from './projection-segments.js';
import { SegmentWakeUps } from './segment-wake-ups.js';
import { type Subscriber, concernsAny, keyOf, modeOf } from './subscriber.js';
import { type Checkpoint, type RecordedEvent, checkpointOf } from './recorded-event.js';

export type { ProjectionRunnerDeps, ProjectionRunnerOptions } from './projection-runner-context.js';

type LiveStep = 'more' | 'held-back' | 'caught-up';

/**
 * Waits while committed events are held back by an older transaction in flight: 5 ms, doubling up
 * to 50 ms (or the poll interval, if shorter). Holders are mostly other runners' batches and
 * appends, done within milliseconds; a long one elsewhere costs a read every 50 ms at most.
 */
const HELD_BACK_FIRST_DELAY_MS = 5;
const HELD_BACK_MAX_DELAY_MS = 50;

/**
 * Runs one segment of a projection in this process, when this process holds the segment's lease
 * (and has room for it in its fair share, SegmentShare). A segment applies the events whose key
 * (Projection.keyOf) falls in it, in commit order, and moves its checkpoint past the others: each
 * key's events are applied by one runner, in order. A projection of one segment is today's runner:
 * - async projections: read the log after the checkpoint in commit order, apply a batch and advance
 *   the checkpoint in one transaction (a crash anywhere leaves either all of it or none of it);
 * - any projection: carry out a requested rebuild into shadow tables, batch by batch, then swap
 *   (projection-rebuild.ts).
 * A handler that throws is retried with backoff; after maxAttempts the projection stops in `failed`
 * with the event's position, and only an operator's retry or skip moves it again
 * (projection-apply-batch.ts). This file is the loop and its wait policy.
 */
export class ProjectionRunner {
  private loop?: Promise<void>;
  /** The lease, the row as last seen and the rebuild's progress, shared with the runner's other jobs. */
  private readonly context: RunnerContext;
  /** The token `state` was loaded under: a new holding reloads the row. */
  private stateToken?: string;
  /** notifier.projectionsChanged and performance.now() when `state` was last read from its row. */
  private stateLoadedAtChange = 0;
  private stateLoadedAt = 0;
  /** When this runner wakes: at once for its own events, later for the others' (segment-wake-ups.ts). */
  private readonly wakeUps: SegmentWakeUps;
  /** wakeUps.sequence when this pass's live step read the log: a wake-up since means "read again". */
  private readAtSequence?: number;
  /** Set when committed events are held back by an older transaction in flight: look again soon. */
  private heldBackDelayMs = 0;
  /** When the live step last read a batch that was neither empty nor full (performance.now()). */
  private partialBatchReadAt = -Infinity;

  constructor(
    readonly projection: Subscriber,
    readonly segment: Segment,
    private readonly deps: ProjectionRunnerDeps,
  ) {
    this.context = new RunnerContext(projection, segment, deps);
    this.wakeUps = new SegmentWakeUps(deps.notifier, projection, segment, deps.idleTick);
  }

  /** Whether this process holds the segment's lease, as far as it knows. */
  get leader(): boolean {
    return this.context.lease.held;
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.context.stopped = true;
    this.wakeUps.dispose(); // and wake the loop so it sees `stopped`
    await this.loop;
    await this.context.lease.release().catch(() => undefined);
    this.deps.share.released(this.segment.index);
  }

  private async run(): Promise<void> {
    const { logger, options, notifier } = this.deps;
    const context = this.context;
    while (!context.stopped) {
      try {
        if (!(await this.holdLease())) {
          await this.idle(Math.min(options.pollIntervalMs, options.leaseTtlMs / 3));
          continue;
        }
        if (!context.state || this.stateIsStale()) {
          this.stateLoadedAtChange = notifier.projectionsChanged;
          this.stateLoadedAt = performance.now();
          context.state = await context.load();
        }
        // Only a live step of this pass may let the wait below return at once (see idle).
        this.readAtSequence = undefined;
        let next: LiveStep = 'caught-up';
        if (context.state.rebuild && (await guardedRebuildStep(context, context.state))) next = 'more';
        if (modeOf(this.projection) === 'async' && context.state?.status === 'running') {
          const live = await this.liveStep(context.state);
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
          if (!notified) context.state = undefined; // quiet for a whole poll: look at the row again anyway
        }
      } catch (error) {
        context.state = undefined;
        if (context.stopped) break;
        if (error instanceof LostLease || isLeaseLost(error)) {
          context.lease.lost();
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
      this.context.state?.status !== 'running' ||
      notifier.projectionsChanged !== this.stateLoadedAtChange ||
      performance.now() - this.stateLoadedAt > options.pollIntervalMs
    );
  }

  /**
   * Holds the lease (its timer renews it) while this process's fair share has room for it; gives it
   * up when this process holds more than its share. A new holding reads the row again.
   */
  private async holdLease(): Promise<boolean> {
    const { lease } = this.context;
    const { share } = this.deps;
    const index = this.segment.index;
    if (lease.held && share.mustRelease(index)) {
      await lease.release();
      share.released(index);
      this.deps.logger.log(`Projection ${this.segment.row}: released to another instance (fair share ${share.share})`);
    }
    if (!lease.held) {
      share.released(index);
      if (!share.canTake()) return false;
    }
    const held = await lease.hold();
    if (held) share.holding(index);
    else share.released(index);
    const token = lease.current?.token;
    if (token !== this.stateToken) {
      this.stateToken = token;
      this.context.state = undefined;
    }
    return held;
  }

  /** The live checkpoint as this process last knew it. */
  get checkpoint(): Checkpoint | undefined {
    return this.context.state?.checkpoint;
  }

  /** For `forMs`, every append wakes this runner at once: a query waits on its projection. */
  hurry(forMs: number): void {
    this.wakeUps.hurry(forMs);
  }

  /** Waits for a wake-up (true) or `ms` (false); see SegmentWakeUps.wait for `since`. */
  private async idle(ms: number, since?: number): Promise<boolean> {
    if (this.context.stopped) return true;
    return this.wakeUps.wait(ms, since);
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
    this.readAtSequence = this.wakeUps.reading();
    const readAt = performance.now();
    const { events, heldBack } = await sharedReadBatch(this.deps.dataSource, log, state.checkpoint, options.batchSize, notifier.sequence);
    this.partialBatchReadAt = events.length > 0 && events.length < options.batchSize ? readAt : -Infinity;
    if (events.length > 0) {
      const mine = this.ofThisSegment(events);
      if (!concernsAny(this.projection, mine)) await this.advancePast(events, state.checkpoint);
      else if (await applyWithRetries(this.context, mine, 'live', state.checkpoint)) {
        // The batch's tail belongs to other segments: past it too, so it is not read again — only
        // once every event of this segment is done (a process manager's batch may stop early).
        const reached = this.context.state?.checkpoint;
        const last = mine[mine.length - 1];
        if (reached && last !== events[events.length - 1] && isSameCheckpoint(reached, checkpointOf(last))) {
          await this.advancePast(events, reached);
        }
      }
      return this.afterProgress(events, heldBack);
    }
    return heldBack ? 'held-back' : 'caught-up';
  }

  /**
   * After a batch: look again at once while there may be more to read now — a full batch, events
   * held back, or a step that did not get to the end of what it read (a failure, a lost lease, a
   * process manager's early stop). A partial batch taken to its end left nothing readable behind:
   * what commits after the read wakes the runner (the wait returns at once for a wake-up that came
   * while it was busy), so another read now would find nothing — at one deposit at a time, it was
   * a round trip per batch.
   */
  private afterProgress(events: readonly RecordedEvent[], heldBack: boolean): LiveStep {
    const reached = this.context.state?.checkpoint;
    const finished = reached !== undefined && isSameCheckpoint(reached, checkpointOf(events[events.length - 1]));
    return finished && !heldBack && events.length < this.deps.options.batchSize ? 'caught-up' : 'more';
  }

  /** The events of the batch whose key falls in this segment (all of them for a single segment). */
  private ofThisSegment(events: readonly RecordedEvent[]): readonly RecordedEvent[] {
    const { index, count } = this.segment;
    if (count === 1) return events;
    return events.filter((event) => segmentOfKey(keyOf(this.projection, event), count) === index);
  }

  /** Moves the live checkpoint past events that change nothing in this segment. */
  private async advancePast(events: readonly RecordedEvent[], from: Checkpoint): Promise<boolean> {
    const { checkpoints, options, owner } = this.deps;
    const context = this.context;
    const checkpoint = checkpointOf(events[events.length - 1]);
    if (!(await checkpoints.advancePast(context.row, owner, context.holding().token, from, checkpoint, options.leaseTtlMs))) {
      // Not ours to move any more (lease lost, or an operator or another runner changed the row).
      context.lease.lost();
      context.state = undefined;
      return false;
    }
    context.state = { ...context.state!, checkpoint, attempts: 0 };
    this.deps.onAdvance(this.projection.name, checkpoint);
    return true;
  }
}
