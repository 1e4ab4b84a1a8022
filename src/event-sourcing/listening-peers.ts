/**
 * The other instances that listen for wake-ups, as far as this one has heard. A lone instance wakes
 * its own readers in process and needs no NOTIFY; sent anyway, it cost a round trip and an echo for
 * nearly every append at low rates (0.6 NOTIFY per deposit, docs/BENCHMARKS.md).
 *
 * Each listening instance says it is there on the presence channel (EventNotifier): `hello` when its
 * LISTEN starts (every instance that hears it answers `here`), `here` again at an interval it states
 * in the word, `bye` when it stops. Any wake-up of another instance (`appended:<id>`, also sent by
 * builds from before this class) counts as a word from it too. An instance that missed
 * MISSED_WORDS of its words is forgotten: one killed without its `bye` costs NOTIFYs for that long,
 * as every append did before. The interval travels with the word, so instances configured apart
 * still judge each other by the pace each one keeps.
 *
 * What it answers decides only whether to send a NOTIFY, never correctness: the readers of every
 * instance still poll (PROJECTION_POLL_INTERVAL_MS), so a wrong "nobody" only delays them to their
 * poll. Two rules keep that rare: while this instance's own LISTEN is down it cannot hear anyone and
 * answers "somebody" (as before this class); and a newly heard instance is sent a wake-up at once
 * (`heard` returns true), which covers the appends this one committed before it heard of it.
 */
/** Words an instance may miss (delayed by a pause or a busy connection) before it is forgotten. */
const MISSED_WORDS = 5;
const MIN_INTERVAL_MS = 10;
const MAX_INTERVAL_MS = 60_000;

export class ListeningPeers {
  /** When each heard instance is forgotten (performance.now()). */
  private readonly expiresAt = new Map<string, number>();

  /**
   * A word from `instance`, which says it every `intervalMs` (bounded: a stray word cannot make an
   * instance remembered for long, nor forgotten at once); true when it was not known (or had been
   * forgotten) before.
   */
  heard(instance: string, intervalMs: number): boolean {
    const known = this.isKnown(instance);
    const interval = Math.min(Math.max(intervalMs, MIN_INTERVAL_MS), MAX_INTERVAL_MS);
    this.expiresAt.set(instance, performance.now() + MISSED_WORDS * interval);
    return !known;
  }

  /** `instance` said it stops. */
  left(instance: string): void {
    this.expiresAt.delete(instance);
  }

  /** Whether any other instance is remembered. */
  any(): boolean {
    const now = performance.now();
    for (const [instance, expiresAt] of this.expiresAt) {
      if (expiresAt > now) return true;
      this.expiresAt.delete(instance);
    }
    return false;
  }

  /** Forgets everyone: this instance's LISTEN restarts, and it hears the others again by their answers. */
  clear(): void {
    this.expiresAt.clear();
  }

  private isKnown(instance: string): boolean {
    const expiresAt = this.expiresAt.get(instance);
    return expiresAt !== undefined && expiresAt > performance.now();
  }
}
