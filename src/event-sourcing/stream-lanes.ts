/**
 * One lane per stream: work queued on a stream runs after the work queued before it on the same
 * stream has finished (first come, first served); streams do not wait for each other.
 *
 * Why (CommandRunner): lone commands of one process on one stream used to race each other for its
 * next version. Only one of them can win each version, so under a burst of N racers most lost again
 * and again, and after COMMAND_MAX_ATTEMPTS were answered 409 although nothing was wrong with them
 * (60 deposits to one account at once: 106 of 120 refused on two instances). The group committer
 * already never sent two appends of one stream at once, so taking turns earlier costs no
 * concurrency: it only spares the losers their wasted reads and appends, and each command decides on
 * the state the previous one appended (the aggregate cache), i.e. it cannot lose to its own process.
 *
 * A lane exists only while work is queued on it (no growth with the number of streams ever seen).
 * Work must not queue more work on the same lane and wait for it: that would wait for itself.
 */
export class StreamLanes {
  /** Per stream: settles when the last work queued on it has finished (never rejects). */
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(stream: string, work: () => Promise<T>): Promise<T> {
    const result = (this.tails.get(stream) ?? Promise.resolve()).then(work);
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
