/**
 * The pure heart of an aggregate: how past events fold into state. Deciding (command + state → new
 * events, or a typed domain error) is a plain function next to it; neither does I/O.
 */
export interface Decider<State, Event extends object> {
  readonly initialState: State;
  evolve(state: State, event: Event): State;
}

export function fold<State, Event extends object>(decider: Decider<State, Event>, events: readonly Event[]): State {
  return events.reduce((state, event) => decider.evolve(state, event), decider.initialState);
}
