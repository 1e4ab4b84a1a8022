import { Injectable } from '@nestjs/common';
import type { Decider } from './decider.js';
import { type AppendResult, EventStore } from './event-store.js';
import { ambient } from './event-store-transaction.js';
import type { RecordedEvent } from './recorded-event.js';
import { SnapshotStore } from './snapshot-store.js';

export interface LoadedAggregate<State> {
  readonly state: State;
  /** The stream's version (0: it does not exist). */
  readonly version: number;
  /** Position of the stream's last event (0: none). */
  readonly position: number;
}

/**
 * Loads an aggregate's current state: the newest usable snapshot (when its type is snapshotted) and
 * the events after it, or the whole stream. After an append that crosses a multiple of the
 * aggregate's snapshot interval, writes a new snapshot.
 */
@Injectable()
export class AggregateLoader {
  constructor(
    private readonly store: EventStore,
    private readonly snapshots: SnapshotStore,
  ) {}

  async load<State, Event extends object>(streamId: string, decider: Decider<State, Event>): Promise<LoadedAggregate<State>> {
    let base: LoadedAggregate<State> = { state: decider.initialState, version: 0, position: 0 };
    let events: RecordedEvent[];
    if (decider.snapshots && this.snapshots.intervalOf(decider.snapshots) > 0) {
      const loaded = await this.store.readStreamAfterSnapshot(streamId, decider.snapshots);
      if (loaded.snapshot) {
        const { state, version, position } = loaded.snapshot;
        base = { state: decider.snapshots.decode(state), version, position };
      }
      events = loaded.events;
    } else {
      events = await this.store.readStream(streamId);
    }
    const last = events.at(-1);
    return {
      state: events.reduce((state, event) => decider.evolve(state, event.data as Event), base.state),
      version: last?.version ?? base.version,
      position: last?.position ?? base.position,
    };
  }

  /**
   * Snapshots the state after `appended` when the append crossed a multiple of the interval. `after`
   * is that state when the caller has folded it already: it must not be folded twice from `before`,
   * because an evolve may share and update collections along a fold (the account's open debits), so a
   * second fold from the same state would see the first one's changes.
   */
  async appended<State, Event extends object>(
    streamId: string,
    decider: Decider<State, Event>,
    before: LoadedAggregate<State>,
    appended: AppendResult,
    after?: State,
  ): Promise<void> {
    const interval = decider.snapshots ? this.snapshots.intervalOf(decider.snapshots) : 0;
    if (interval === 0 || Math.floor(appended.version / interval) === Math.floor(before.version / interval)) return;
    const state = after ?? appended.events.reduce((current, event) => decider.evolve(current, event.data as Event), before.state);
    const save = () =>
      this.snapshots.save(
        streamId,
        decider.snapshots!,
        { state, version: appended.version, position: appended.position },
        this.snapshots.manager,
      );
    // In a unit of work: once it has committed (the state is then a fact), outside its transaction.
    const unitOfWork = ambient.getStore();
    if (unitOfWork) unitOfWork.afterCommit.push(save);
    else await save();
  }
}
