import type { LoadedAggregate } from './aggregate-loader.js';
import type { Decider } from './decider.js';

interface Entry {
  readonly decider: Decider<unknown, object>;
  readonly loaded: LoadedAggregate<unknown>;
}

/**
 * The state this process last appended to a stream, folded, with its version: a command on a stream
 * it wrote last can decide without reading the stream again (two round trips of the three a deposit
 * made). Only a hint: the append still checks the version against the database, so a stale entry
 * (another instance wrote since) costs a conflict and a fresh load, never a write on stale state; and
 * CommandRunner trusts it only for an append, never for a refusal (see there).
 *
 * Bounded: the least recently used entry goes first (a Map keeps insertion order; a hit moves its
 * entry to the end). Capacity 0 turns it off.
 */
export class AggregateCache {
  private readonly entries = new Map<string, Entry>();

  constructor(readonly capacity: number) {}

  get<State, Event extends object>(streamId: string, decider: Decider<State, Event>): LoadedAggregate<State> | undefined {
    const entry = this.entries.get(streamId);
    if (!entry) return undefined;
    // Another decider over the same stream id folds another state: not this one's to use.
    if (entry.decider !== (decider as Decider<unknown, object>)) return undefined;
    this.entries.delete(streamId);
    this.entries.set(streamId, entry);
    return entry.loaded as LoadedAggregate<State>;
  }

  /**
   * Remembers the state at `loaded.version`, unless a later version of the stream by the same decider
   * is remembered already (units of work commit in one order and report it in another).
   */
  set<State, Event extends object>(streamId: string, decider: Decider<State, Event>, loaded: LoadedAggregate<State>): void {
    if (this.capacity <= 0) return;
    const known = this.entries.get(streamId);
    if (known?.decider === (decider as Decider<unknown, object>) && known.loaded.version > loaded.version) return;
    this.entries.delete(streamId);
    this.entries.set(streamId, { decider: decider as Decider<unknown, object>, loaded });
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
  }

  delete(streamId: string): void {
    this.entries.delete(streamId);
  }

  get size(): number {
    return this.entries.size;
  }
}
