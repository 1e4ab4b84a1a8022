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
 * Bounded: work that waited longer than `maxWaitMs` for its turn is not run; its caller gets
 * StreamBusyError (503 with Retry-After), nothing written, instead of a queue that grows for as long
 * as the load lasts (found in review: deposits applied seconds after their clients gave up).
 *
 * Work running in a stream's lane that queues more work on the same stream runs it at once, inside
 * its own turn (AsyncLocalStorage knows which lanes the current work holds): waiting for the lane
 * would wait for itself. A lane exists only while work is queued on it.
 */
export class StreamLanes {
  /** Per stream: settles when the last work queued on it has finished (never rejects). */
  private readonly tails = new Map<string, Promise<void>>();
  /** The streams whose lane the current async context holds. */
  private readonly held = new AsyncLocalStorage<ReadonlySet<string>>();

  constructor(private readonly maxWaitMs: number = Number.POSITIVE_INFINITY) {}

  /** `maxWaitMs` overrides the lanes' bound for this work (Infinity: it waits as long as it takes). */
  run<T>(stream: string, work: () => Promise<T>, maxWaitMs: number = this.maxWaitMs): Promise<T> {
    const holding = this.held.getStore();
    if (holding?.has(stream)) return work();
    const queuedAt = performance.now();
    const turn = () => {
      const waited = performance.now() - queuedAt;
      if (waited > maxWaitMs) throw new StreamBusyError(stream, Math.round(waited));
      return this.held.run(new Set([...(holding ?? []), stream]), work);
    };
    const result = (this.tails.get(stream) ?? Promise.resolve()).then(turn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(stream, tail);
    void tail.then(() => {
      if (this.tails.get(stream) === tail) this.tails.delete(stream);
    });
    return result;
  }

  /** Streams with work queued or running (tests). */
  get size(): number {
    return this.tails.size;
  }
}
