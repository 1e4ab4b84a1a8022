/**
 * Runs a batch's reactions in lanes: the events of one key (a transfer) one after another, in batch
 * order; different keys concurrently, at most `concurrency` at once. So the steps of different
 * transfers do not wait for each other's commits, while each transfer's steps keep their order.
 *
 * What the caller may commit is the prefix: the events from the start of the batch that all completed
 * (`done`). Events of other lanes past it may have completed too (`completed`): the caller writes
 * them with the checkpoint so that nobody runs them again (completed-ahead.ts). After the first error no new event starts; the ones in flight
 * are awaited, so nothing is left running when this returns.
 */
export interface LaneOutcome {
  /** How many events from the start of the batch completed. */
  readonly done: number;
  /** Which events completed, by batch index (some past `done`, in other lanes). */
  readonly completed: readonly boolean[];
  /** The first error by batch index, if any; `index` is where it happened. */
  readonly failure?: { readonly index: number; readonly error: unknown };
}

export async function runInLanes<E>(
  events: readonly E[],
  keyOf: (event: E) => string,
  concurrency: number,
  /** Whether the event at `index` may still start (time budget, lease); the first always does. */
  mayStart: (index: number) => boolean,
  work: (event: E) => Promise<void>,
): Promise<LaneOutcome> {
  const slots = new Slots(Math.max(1, concurrency));
  const completed: boolean[] = new Array<boolean>(events.length).fill(false);
  let failure: { index: number; error: unknown } | undefined;
  const failed = () => failure !== undefined; // a function: TypeScript would narrow a direct read across awaits
  // Each event waits for the previous one of its key, then for a free slot; slots are handed out in
  // the order they are asked for, which is batch order among the events ready to run (so with a
  // concurrency of 1 this is exactly one event at a time in batch order).
  const tails = new Map<string, { done: Promise<void>; index: number }>();
  for (const [index, event] of events.entries()) {
    const key = keyOf(event);
    const previous = tails.get(key);
    const run = async () => {
      if (previous) await previous.done;
      if (previous && !completed[previous.index]) return; // the key stopped: keep its order
      await slots.take();
      try {
        if (failed() || (index > 0 && !mayStart(index))) return;
        await work(event);
        completed[index] = true;
      } catch (error) {
        if (!failure || index < failure.index) failure = { index, error };
      } finally {
        slots.give();
      }
    };
    tails.set(key, { done: run(), index });
  }
  await Promise.all([...tails.values()].map((tail) => tail.done));

  const firstIncomplete = completed.indexOf(false);
  const done = firstIncomplete === -1 ? events.length : firstIncomplete;
  return failure ? { done, completed, failure } : { done, completed };
}

/** A counting semaphore whose waiters are served first come, first served. */
class Slots {
  private readonly waiting: Array<() => void> = [];
  constructor(private free: number) {}

  take(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}
