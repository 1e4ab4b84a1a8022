import { AsyncLocalStorage } from 'node:async_hooks';
import { StreamBusyError } from './errors.js';

/**
 * One lane per stream: work queued on a stream runs after the work queued before it on the same
 * stream has finished (first come, first served); streams do not wait for each other.
 *
 * Why (CommandRunner, EventStore.transaction): lone commands of one process on one stream used to
 * race each other for its next version. Only one of them can win each version, so under a burst of
 * N racers most lost again and again, and after COMMAND_MAX_ATTEMPTS were answered 409 although
 * nothing was wrong with them (60 deposits to one account at once: 106 of 120 refused on two
 * instances). Taking turns, each decides on the state the previous one appended (the aggregate
 * cache) and cannot lose to its own process. A unit of work that lost a race on a stream takes that
 * stream's lane for its next attempt, so the lone commands of its process cannot beat it again.
 * Lanes do nothing for races with other processes.
 *
 * Bounded: work still waiting for its turn `maxWaitMs` after it was queued is refused then (a timer,
 * not a check when the turn comes: the work ahead may be stuck on a lock for much longer) and its
 * turn skipped; its caller gets StreamBusyError (503 with Retry-After), nothing written, instead of
 * a queue that grows for as long as the load lasts (found in review: deposits applied seconds after
 * their clients had given up).
 *
 * Work running in a stream's turn that runs more work on the same stream runs it at once, within
 * its own turn (re-entrant: AsyncLocalStorage knows the turns the current work is in): waiting for
 * the lane would wait for itself. Such nested work may run alongside the work that started it, and
 * the turn lasts until every work started in it has settled, so the next waiter never overlaps one
 * (found in review: a nested work left running overlapped the next turn). Once the turn is over, a
 * timer or a promise it left behind queues like anyone else. Work in a lane must not wait for
 * another stream's lane that may be waiting for its own: with unbounded waits (a process manager's)
 * that is a deadlock; nothing does it today. A lane exists only while work is queued on it.
 */
export class StreamLanes {
  /** Per stream: settles when the last work queued on it has had its turn (never rejects). */
  private readonly tails = new Map<string, Promise<void>>();
  /** The turns the current async context runs in, per stream: re-entry skips the queue while active. */
  private readonly turns = new AsyncLocalStorage<ReadonlyMap<string, Turn>>();
  /** Works queued behind another on their stream, not yet run nor refused. */
  private waitingNow = 0;
  /** Told how long each work waited for its turn (metrics; the lanes know nothing of them). */
  private turnListener?: (waitedMs: number) => void;

  constructor(private readonly maxWaitMs: number = Number.POSITIVE_INFINITY) {}

  /** Calls `listener` with the wait of every work that gets its turn (0 for one that found its lane free). */
  onTurn(listener: (waitedMs: number) => void): void {
    this.turnListener = listener;
  }

  /** Works waiting for their turn now, and streams with work queued or running: what a queue looks like. */
  get depth(): { readonly waiting: number; readonly streams: number } {
    return { waiting: this.waitingNow, streams: this.tails.size };
  }

  /** `maxWaitMs` overrides the lanes' bound for this work (Infinity: it waits as long as it takes). */
  run<T>(stream: string, work: () => Promise<T>, maxWaitMs: number = this.maxWaitMs): Promise<T> {
    const inside = this.turns.getStore();
    const current = inside?.get(stream);
    if (current?.active) return within(current, work);
    const before = this.tails.get(stream);
    let turnTaken!: () => void;
    const tail = new Promise<void>((resolve) => (turnTaken = resolve));
    this.tails.set(stream, tail);
    void tail.then(() => {
      if (this.tails.get(stream) === tail) this.tails.delete(stream);
    });
    // Dropped when refused: a waiter refused behind a stuck head keeps no request alive (review).
    let pending: (() => Promise<T>) | undefined = work;
    if (before) this.waitingNow++;
    return new Promise<T>((resolve, reject) => {
      const queuedAt = performance.now();
      const timer =
        before && Number.isFinite(maxWaitMs)
          ? setTimeout(() => {
              pending = undefined;
              this.waitingNow--;
              reject(new StreamBusyError(stream, Math.round(performance.now() - queuedAt)));
            }, maxWaitMs)
          : undefined;
      void (before ?? Promise.resolve()).then(() => {
        clearTimeout(timer);
        const toRun = pending;
        if (!toRun) {
          turnTaken(); // refused: its turn passes at once (and stopped waiting when refused)
          return;
        }
        if (before) this.waitingNow--;
        try {
          this.turnListener?.(before ? performance.now() - queuedAt : 0);
        } catch {
          // Metrics only: a listener that throws must not keep the work from its turn, nor the lane
          // from the works behind it (found in review: the lane stayed blocked for good).
        }
        const turn: Turn = { active: true, open: 0, end: turnTaken };
        this.turns.run(new Map([...(inside ?? []), [stream, turn]]), () => within(turn, toRun)).then(resolve, reject);
      });
    });
  }

  /** Streams with work queued or running (tests). */
  get size(): number {
    return this.tails.size;
  }
}

interface Turn {
  active: boolean;
  /** Works started in the turn and not settled yet (the first one included). */
  open: number;
  /** Hands the lane on: called once, when the last open work has settled. */
  readonly end: () => void;
}

/** Runs `work` as one of `turn`'s open works; a work that throws at once or returns no promise is normalised. */
function within<T>(turn: Turn, work: () => Promise<T>): Promise<T> {
  turn.open++;
  let running: Promise<T>;
  try {
    running = Promise.resolve(work());
  } catch (error) {
    running = Promise.reject(error as Error);
  }
  const settled = () => {
    if (--turn.open > 0) return;
    turn.active = false;
    turn.end();
  };
  running.then(settled, settled);
  return running;
}
