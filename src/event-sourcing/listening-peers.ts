/**
 * The other instances that listen for wake-ups, as far as this one has heard. A lone instance wakes
 * its own readers in process and needs no NOTIFY; sent anyway, it cost a round trip and an echo for
 * nearly every append at low rates (0.6 NOTIFY per deposit, docs/BENCHMARKS.md).
 *
 * Each listening instance says it is there on the presence channel (EventNotifier): `hello` when its
 * LISTEN starts (the instances that hear it answer `here`), `here` again at an interval it states
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
 *
 * Anyone who can log in to the database can NOTIFY (it needs no privilege), so the words are not
 * trusted further than that costs: a forged `bye` or a short interval makes a real instance
 * forgotten early, until its next `here` (at most its interval) brings it back with a catch-up
 * wake-up; forged ids are held at most MAX_PEERS at a time, each for at most MISSED_WORDS ×
 * MAX_INTERVAL_MS, and beyond that cap a new id only counts as "somebody listens".
 */
/** Words an instance may miss (delayed by a pause or a busy connection) before it is forgotten. */
const MISSED_WORDS = 5;
const MIN_INTERVAL_MS = 10;
const MAX_INTERVAL_MS = 60_000;
/** Far more instances than one database serves; a bound on what a flood of forged ids can hold. */
const MAX_PEERS = 1000;
/** How often at most every forgotten instance is dropped from memory (`any` stops at the first live one). */
const PRUNE_EVERY_MS = 1000;

export class ListeningPeers {
  /** When each heard instance is forgotten (performance.now()). */
  private readonly expiresAt = new Map<string, number>();
  /** Until when a word beyond MAX_PEERS says that somebody listens. */
  private crowdedUntil = -Infinity;
  private prunedAt = -Infinity;

  /**
   * A word from `instance`, which says it every `intervalMs` (clamped to 10 ms–60 s); true when it
   * was not known (or had been forgotten) before.
   */
  heard(instance: string, intervalMs: number): boolean {
    const now = performance.now();
    const interval = Math.min(Math.max(intervalMs, MIN_INTERVAL_MS), MAX_INTERVAL_MS);
    const expiresAt = now + MISSED_WORDS * interval;
    const known = (this.expiresAt.get(instance) ?? -Infinity) > now;
    if (!this.expiresAt.has(instance) && this.expiresAt.size >= MAX_PEERS) {
      // At most once a second: a flood past the cap must not cost a pass over the map per word.
      if (now - this.prunedAt >= PRUNE_EVERY_MS) this.prune(now);
      if (this.expiresAt.size >= MAX_PEERS) {
        this.crowdedUntil = Math.max(this.crowdedUntil, expiresAt);
        return false;
      }
    }
    this.expiresAt.set(instance, expiresAt);
    return !known;
  }

  /** `instance` said it stops. */
  left(instance: string): void {
    this.expiresAt.delete(instance);
  }

  /** Whether any other instance is remembered. */
  any(): boolean {
    const now = performance.now();
    if (now - this.prunedAt >= PRUNE_EVERY_MS) this.prune(now);
    if (this.crowdedUntil > now) return true;
    for (const [instance, expiresAt] of this.expiresAt) {
      if (expiresAt > now) return true;
      this.expiresAt.delete(instance);
    }
    return false;
  }

  /** Forgets everyone: this instance's LISTEN restarts, and it hears the others again by their answers. */
  clear(): void {
    this.expiresAt.clear();
    this.crowdedUntil = -Infinity;
  }

  /** Forgotten instances leave memory (a live one at the front would keep `any` from reaching them). */
  private prune(now: number): void {
    this.prunedAt = now;
    for (const [instance, expiresAt] of this.expiresAt) if (expiresAt <= now) this.expiresAt.delete(instance);
  }
}
