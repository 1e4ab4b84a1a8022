import type { EventNotifier } from './event-notifier.js';
import type { RecordedEvent } from './recorded-event.js';
import { type Segment, segmentOfKey } from './projection-segments.js';
import { type Subscriber, concernsAny, keyOf } from './subscriber.js';

/**
 * One timer for every segment of the process that has only others' events to pass: they all wake
 * together when it fires, so that those at the same checkpoint share one read of the log
 * (projection-runner-shared-reads.ts) and their checkpoint writes go in one statement
 * (CheckpointPasses).
 */
export class IdleSegmentTick {
  private readonly due = new Set<() => void>();
  private timer?: NodeJS.Timeout;

  constructor(readonly delayMs: number) {}

  /** Calls `wake` when the tick fires (at most `delayMs` from now); once, however often it is deferred. */
  defer(wake: () => void): void {
    this.due.add(wake);
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const due = [...this.due];
      this.due.clear();
      for (const callback of due) callback();
    }, this.delayMs);
    this.timer.unref();
  }

  cancel(wake: () => void): void {
    this.due.delete(wake);
  }
}

/**
 * When one segment's runner wakes. An append of this process announces its events: the runner wakes
 * at once only if one of them is its own (an event its projection handles, whose key falls in its
 * segment); for the others it only has to move its checkpoint past them, which waits for the next
 * idle tick (IdleSegmentTick, PROJECTION_IDLE_SEGMENT_DELAY_MS) and then covers every append of the
 * meantime in one read and one write. With every event waking every
 * segment, a lone deposit cost each projection of four segments a read and three checkpoint writes
 * (docs/BENCHMARKS.md). A wake-up without events (another instance's NOTIFY, an operator's change,
 * a stop) wakes at once; so does every append while the runner is hurried (a query waits on the
 * projection: ProjectionWaiter).
 *
 * `sequence` counts this runner's wake-ups, so that one that came while it was busy after its read
 * is not missed (as EventNotifier.sequence does for every reader).
 */
export class SegmentWakeUps {
  sequence = 0;
  private waiting?: () => void;
  private hurriedUntil = -Infinity;
  private readonly onAppended = (events?: readonly RecordedEvent[]) => {
    if (!events || !this.tick || performance.now() < this.hurriedUntil || events.some((event) => this.owns(event))) this.wake();
    else this.tick.defer(this.wake);
  };

  constructor(
    private readonly notifier: EventNotifier,
    private readonly subscriber: Subscriber,
    private readonly segment: Segment,
    /** Absent: every append wakes the runner at once. */
    private readonly tick: IdleSegmentTick | undefined,
  ) {
    notifier.on('appended', this.onAppended);
  }

  /** Wakes the runner now (and forgets a deferred wake-up: this one covers it). */
  readonly wake = (): void => {
    this.tick?.cancel(this.wake);
    this.sequence++;
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.();
  };

  /** For `forMs`, every append wakes the runner at once (and so does this call). */
  hurry(forMs: number): void {
    this.hurriedUntil = Math.max(this.hurriedUntil, performance.now() + forMs);
    this.wake();
  }

  /**
   * The runner starts a read of the log: it covers every append announced so far (announced after
   * their commit), so a deferred wake-up for them has nothing left to do. Returns the `since` to
   * pass to `wait` after that read.
   */
  reading(): number {
    this.tick?.cancel(this.wake);
    return this.sequence;
  }

  /** True on a wake-up (at once if one came since `since`), false after `ms`. */
  wait(ms: number, since?: number): Promise<boolean> {
    if (since !== undefined && since !== this.sequence) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        resolve(false);
      }, ms);
      this.waiting = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  dispose(): void {
    this.notifier.off('appended', this.onAppended);
    this.wake();
  }

  private owns(event: RecordedEvent): boolean {
    const { index, count } = this.segment;
    if (!concernsAny(this.subscriber, [event])) return false;
    return count === 1 || segmentOfKey(keyOf(this.subscriber, event), count) === index;
  }
}
