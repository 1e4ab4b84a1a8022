import { Logger } from '@nestjs/common';
import {
  type Checkpoint,
  type EventLogReader,
  type EventNotifier,
  type RecordedEvent,
  checkpointOf,
  compareCheckpoints,
} from '../event-sourcing/index.js';
import { EventResponse } from './event.response.js';

/** Events read from the log per statement, by the shared reader and by a stream catching up. */
export const LIVE_FEED_PAGE = 100;

/**
 * While events committed after the last read are held back by an older transaction still in flight
 * (which may append nothing, so no NOTIFY announces its end): look again after 5 ms, doubling up to
 * 100 ms. Such holders (projection batches, appends) last milliseconds.
 */
const HELD_BACK_FIRST_DELAY_MS = 5;
const HELD_BACK_MAX_DELAY_MS = 100;
/** Frames kept for streams that catch up to just behind the tail (shared, already serialised). */
const RECENT_FRAMES = 2 * LIVE_FEED_PAGE;
/** After a failed read (database unreachable…): retry this much later; the streams stay open. */
const READ_ERROR_DELAY_MS = 1000;

/** An event as sent to every stream: serialised once for all of them. */
export interface LiveFrame {
  readonly checkpoint: Checkpoint;
  readonly text: string;
}

export function frameOf(event: RecordedEvent): LiveFrame {
  return {
    checkpoint: checkpointOf(event),
    text: `id: ${event.position}\nevent: ${event.type}\ndata: ${JSON.stringify(EventResponse.of(event))}\n\n`,
  };
}

/** A stream fed by the hub. */
export interface LiveSubscriber {
  /** The last event this stream has (sent or queued): it needs what comes after. */
  readonly after: Checkpoint;
  /** The next frames of the log after the hub's previous batch (the subscriber skips those it has). */
  deliver(frames: readonly LiveFrame[]): void;
}

/**
 * The one reader of the global log per process that feeds every live stream: each batch is read
 * once (commit-safe order, as EventStore.readBatch) and handed to every joined stream, so N streams
 * cost one read per batch, not N. It reads only while at least one stream is joined, wakes on the
 * NOTIFY of an append, re-reads soon while committed events are held back, and otherwise polls every
 * PROJECTION_POLL_INTERVAL_MS (a notification can be lost).
 *
 * A stream joins only when it already has every event up to the hub's tail; one that is behind (it
 * resumed from an old Last-Event-ID, or was too slow and was dropped) catches up with reads of its
 * own and then joins. Because a commit-safe read never later finds an event before a checkpoint it
 * has passed, "every event after the tail, in order, to every joined stream" is gap-free.
 */
export class LiveFeedHub {
  private readonly logger = new Logger('LiveFeed');
  private readonly subscribers = new Set<LiveSubscriber>();
  /** The last event the hub has read (meaningful while it has subscribers). */
  private tail?: Checkpoint;
  /** Changes when the tail is reset for a fresh start: a read begun before it is discarded. */
  private epoch = 0;
  /** Whether the read loop runs; set and cleared synchronously with its checks, so no join is missed. */
  private active = false;
  private loop?: Promise<void>;
  private stopping = false;
  /**
   * The last frames read (at most RECENT_FRAMES), and the checkpoint just before the first of them:
   * a stream that catches up to within them joins without reading again.
   */
  private recent: LiveFrame[] = [];
  private recentFrom?: Checkpoint;
  /** Ends the loop's current wait. */
  private kick?: () => void;

  constructor(
    private readonly store: EventLogReader,
    private readonly notifier: EventNotifier,
    private readonly pollIntervalMs: number,
  ) {}

  /**
   * Joins the fan-out when the subscriber has every event up to the tail, or all but the last few the
   * hub read: answers the frames it still needs before the next batch (often none). Undefined: it is
   * further behind and must read on by itself first. With no subscriber the hub is idle, and starts
   * again from this one.
   */
  join(subscriber: LiveSubscriber): readonly LiveFrame[] | undefined {
    if (this.stopping) return undefined;
    let missing: readonly LiveFrame[] = [];
    if (this.subscribers.size === 0) {
      this.tail = subscriber.after;
      this.recent = [];
      this.recentFrom = subscriber.after;
      this.epoch++;
      this.kick?.(); // a loop still waiting from the last subscriber's time reads for this one now
    } else if (compareCheckpoints(subscriber.after, this.tail!) < 0) {
      // The recent frames are every event after recentFrom up to the tail, contiguous in commit order.
      if (compareCheckpoints(subscriber.after, this.recentFrom!) < 0) return undefined;
      missing = this.recent.filter((frame) => compareCheckpoints(frame.checkpoint, subscriber.after) > 0);
    }
    this.subscribers.add(subscriber);
    if (!this.active) {
      this.active = true;
      this.loop = this.run();
    }
    return missing;
  }

  leave(subscriber: LiveSubscriber): void {
    this.subscribers.delete(subscriber);
  }

  /** Joined streams (for tests and diagnostics). */
  get joined(): number {
    return this.subscribers.size;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.subscribers.clear();
    this.kick?.(); // wake the loop so it sees it has nothing to do
    await this.loop;
  }

  private async run(): Promise<void> {
    try {
      await this.readWhileJoined();
    } catch (error) {
      // Not expected (read errors are retried): the streams then catch up on their own when they rejoin.
      this.logger.error(`The live feed's reader stopped: ${(error as Error).stack ?? String(error)}`);
      this.subscribers.clear();
    } finally {
      this.active = false; // in the same synchronous step as the loop's last check: no join is missed
    }
  }

  private async readWhileJoined(): Promise<void> {
    let heldBackMs = 0;
    while (this.subscribers.size > 0 && !this.stopping) {
      const epoch = this.epoch;
      const since = this.notifier.sequence;
      let batch: { events: readonly RecordedEvent[]; heldBack: boolean };
      try {
        batch = await this.store.log.readBatch(this.tail!, LIVE_FEED_PAGE);
      } catch (error) {
        this.logger.warn(`Reading the log for the live feed failed (${(error as Error).message}); retrying`);
        await this.wait(READ_ERROR_DELAY_MS);
        continue;
      }
      if (epoch !== this.epoch) continue; // every subscriber left and another started afresh meanwhile
      if (batch.events.length > 0) {
        const frames = batch.events.map(frameOf);
        this.tail = frames[frames.length - 1].checkpoint;
        this.recent.push(...frames);
        if (this.recent.length > RECENT_FRAMES) {
          const dropped = this.recent.splice(0, this.recent.length - RECENT_FRAMES);
          this.recentFrom = dropped[dropped.length - 1].checkpoint;
        }
        for (const subscriber of [...this.subscribers]) subscriber.deliver(frames);
      }
      if (batch.events.length === LIVE_FEED_PAGE) continue;
      if (batch.heldBack) {
        heldBackMs = Math.min(Math.max(heldBackMs * 2, HELD_BACK_FIRST_DELAY_MS), HELD_BACK_MAX_DELAY_MS);
        await this.wait(heldBackMs, since);
      } else {
        heldBackMs = 0;
        await this.wait(this.pollIntervalMs, since);
      }
    }
  }

  /**
   * Until a notification (at once if one came since `since`, the notifier's sequence before the
   * read), a kick (a fresh start, shutdown) or `ms`, whichever comes first.
   */
  private wait(ms: number, since?: number): Promise<void> {
    if (since !== undefined && since !== this.notifier.sequence) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.notifier.off('appended', done);
        if (this.kick === done) this.kick = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.notifier.once('appended', done);
      this.kick = done;
    });
  }
}
