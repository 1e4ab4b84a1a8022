/**
 * The pure heart of an aggregate: how past events fold into state. Deciding (command + state → new
 * events, or a typed domain error) is a plain function next to it; neither does I/O.
 */
export interface Decider<State, Event extends object> {
  readonly initialState: State;
  evolve(state: State, event: Event): State;
  /** How this aggregate's state is snapshotted (see SnapshotStore); absent: never snapshotted. */
  readonly snapshots?: SnapshotCodec<State>;
  /**
   * A state equal to `state` that folding it further cannot change `state` through (an evolve that
   * adds to a collection in place must copy that collection here). With it, a command inside a unit
   * of work decides from the state this process last appended (CommandRunner's aggregate cache)
   * instead of reading the stream in its transaction: the unit of work may still roll back, so it
   * must fold a state of its own. Absent: units of work always read the stream.
   */
  copy?(state: State): State;
}

/**
 * Turns an aggregate's state into JSON and back. `schemaVersion` is the version of that JSON shape:
 * bump it whenever the state's shape changes, and older snapshots are simply ignored.
 */
export interface SnapshotCodec<State> {
  /** Names the aggregate type for SNAPSHOT_INTERVALS, e.g. "account". */
  readonly aggregate: string;
  readonly schemaVersion: number;
  encode(state: State): unknown;
  decode(json: unknown): State;
}

export function fold<State, Event extends object>(decider: Decider<State, Event>, events: readonly Event[]): State {
  return events.reduce((state, event) => decider.evolve(state, event), decider.initialState);
}
