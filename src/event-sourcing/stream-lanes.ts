import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
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
 * not a check when the turn comes: the work ahead may be stuck on a lock for much longer), taken out
 * of the queue, and its caller gets StreamBusyError (503 with Retry-After), nothing written, instead
 * of a queue that grows for as long as the load lasts (found in review: deposits applied seconds
 * after their clients had given up). A refused work leaves nothing behind: the queue is a list of
 * waiters, not a chain of promises, which kept about 1.7 KB per refused caller (its promise among
 * them) alive until the work ahead ended — 35 MB per 20,000 refusals behind a head stuck on a lock
 * for up to DATABASE_STATEMENT_TIMEOUT_MS (found in review).
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
  /** Per stream with a turn running: the works queued behind it, in arrival order. */
  private readonly lanes = new Map<string, WaitingList>();
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
    return { waiting: this.waitingNow, streams: this.lanes.size };
  }

  /** `maxWaitMs` overrides the lanes' bound for this work (Infinity: it waits as long as it takes). */
  run<T>(stream: string, work: () => Promise<T>, maxWaitMs: number = this.maxWaitMs): Promise<T> {
    const inside = this.turns.getStore();
    const current = inside?.get(stream);
    if (current?.active) return within(current, work);
    return new Promise<T>((resolve, reject) => {
      const begin = (waitedMs: number) => {
        try {
          this.turnListener?.(waitedMs);
        } catch {
          // Metrics only: a listener that throws must not keep the work from its turn, nor the lane
          // from the works behind it (found in review: the lane stayed blocked for good).
        }
        const turn = this.newTurn(stream);
        this.turns.run(new Map([...(inside ?? []), [stream, turn]]), () => within(turn, work)).then(resolve, reject);
      };
      const queue = this.lanes.get(stream);
      if (!queue) {
        this.lanes.set(stream, new WaitingList());
        // On the next microtask, as a queued work starts: never inside the caller's own call.
        void Promise.resolve().then(() => begin(0));
        return;
      }
      const queuedAt = performance.now();
      this.waitingNow++;
      let timer: NodeJS.Timeout | undefined;
      // Started by the turn before it, in this caller's async context (its log context, its fence).
      // A plain AsyncResource: AsyncResource.bind cost about 9 µs and 2 KB more per waiter (review).
      const context = new AsyncResource('StreamLaneWaiter');
      const waiter = queue.push(() =>
        context.runInAsyncScope(() => {
          clearTimeout(timer);
          this.waitingNow--;
          begin(performance.now() - queuedAt);
        }),
      );
      if (Number.isFinite(maxWaitMs)) {
        timer = setTimeout(() => {
          queue.remove(waiter);
          this.waitingNow--;
          reject(new StreamBusyError(stream, Math.round(performance.now() - queuedAt)));
        }, maxWaitMs);
      }
    });
  }

  /** Streams with work queued or running (tests). */
  get size(): number {
    return this.lanes.size;
  }

  /**
   * A turn made where nothing of the work is in scope: its `end` is kept by whatever async resource
   * the work opened (a pooled socket, a timer) through the lanes' context, and a closure made in
   * `run` would keep the work, its caller and its waiter alive with it (found in review).
   */
  private newTurn(stream: string): Turn {
    return { active: true, open: 0, end: () => this.handOn(stream) };
  }

  /** A turn on `stream` ended: the first work still queued takes the next one, or the lane goes. */
  private handOn(stream: string): void {
    const start = this.lanes.get(stream)?.shift();
    if (start) start();
    else this.lanes.delete(stream);
  }
}

/** A queued work's place in its lane: starts its turn; unlinked when started or refused. */
interface Waiter {
  start?: () => void;
  previous?: Waiter;
  next?: Waiter;
}

/**
 * The works waiting on one stream, first come first served: a doubly linked list, so that a refusal
 * leaves in O(1) from anywhere and the first is taken in O(1) (a Set taken from its front scans the
 * holes its deletions left: draining n waiters was O(n²), found in review).
 */
class WaitingList {
  private first?: Waiter;
  private last?: Waiter;

  push(start: () => void): Waiter {
    const waiter: Waiter = { start, previous: this.last };
    if (this.last) this.last.next = waiter;
    else this.first = waiter;
    this.last = waiter;
    return waiter;
  }

  /** Takes the first waiter out and answers its start, or undefined when none waits. */
  shift(): (() => void) | undefined {
    const waiter = this.first;
    if (!waiter) return undefined;
    const start = waiter.start;
    this.remove(waiter);
    return start;
  }

  remove(waiter: Waiter): void {
    if (!waiter.start) return; // already out
    if (waiter.previous) waiter.previous.next = waiter.next;
    else this.first = waiter.next;
    if (waiter.next) waiter.next.previous = waiter.previous;
    else this.last = waiter.previous;
    waiter.start = waiter.previous = waiter.next = undefined;
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
