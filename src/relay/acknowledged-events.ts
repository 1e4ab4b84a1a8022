import type { LeaseHolding, RecordedEvent } from '../event-sourcing/index.js';

/** How many streams' acknowledged versions are remembered at most (least recently written forgotten first). */
export const ACKNOWLEDGED_STREAMS_REMEMBERED = 10_000;

/**
 * The events the broker acknowledged beyond the relay's checkpoint, remembered by the lease holding
 * that published them, so that the same holder does not publish them again when it retries a batch.
 *
 * Why: the relay publishes a batch in lanes (one per stream). When one lane fails (a broker refusal),
 * the checkpoint can only take the completed prefix of the batch, but other lanes have published
 * events past it. Every retry starts from the checkpoint; without this memory it would publish those
 * again, and a retry later than the stream's duplicate window (2 minutes: the engine's backoff, an
 * operator's `projections retry`) would have the broker store them twice.
 *
 * What is remembered, per holding (checkpoint row + lease token) and stream: the highest version
 * acknowledged. A stream's lane publishes its events one at a time in version order, so every
 * version up to that one was acknowledged too. Bounded: at most ACKNOWLEDGED_STREAMS_REMEMBERED
 * entries; a forgotten one costs a republish, which the broker drops within its duplicate window
 * (the case of a new holder after a crash, which has no memory of the old one's publishes).
 */
export class AcknowledgedEvents {
  /** `<row> <token> <streamId>` → highest acknowledged version; Map order is least recently written first. */
  private readonly versions = new Map<string, number>();

  constructor(private readonly capacity = ACKNOWLEDGED_STREAMS_REMEMBERED) {}

  /** Whether this holding already had `event` acknowledged by the broker. */
  has(holding: LeaseHolding, event: RecordedEvent): boolean {
    const acknowledged = this.versions.get(entryKey(holding, event));
    return acknowledged !== undefined && event.version <= acknowledged;
  }

  /** The broker acknowledged `event`, published by this holding. */
  remember(holding: LeaseHolding, event: RecordedEvent): void {
    const key = entryKey(holding, event);
    const acknowledged = this.versions.get(key);
    if (acknowledged !== undefined && acknowledged >= event.version) return;
    this.versions.delete(key); // re-inserted last: the most recently written
    this.versions.set(key, event.version);
    if (this.versions.size > this.capacity) this.versions.delete(this.versions.keys().next().value!);
  }

  get size(): number {
    return this.versions.size;
  }
}

function entryKey(holding: LeaseHolding, event: RecordedEvent): string {
  return `${holding.name} ${holding.token} ${event.streamId}`;
}
