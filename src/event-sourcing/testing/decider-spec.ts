import { deepStrictEqual, fail } from 'node:assert/strict';
import { type Decider, fold } from '../decider.js';

/**
 * Given/when/then for pure domain code, in the style of Emmett's DeciderSpecification:
 *   spec.given([AccountOpened…]).when((state) => withdrawMoney(state, …)).then([MoneyWithdrawn…])
 *   spec.given([]).when(…).thenThrows(AccountNotFoundError)
 * Uses node:assert, so it works under any test runner.
 */
export function deciderSpec<State, Event extends object>(decider: Decider<State, Event>) {
  return {
    given(history: readonly Event[]) {
      return {
        when(decide: (state: State) => Event[]) {
          const run = () => decide(fold(decider, history));
          return {
            then(expected: readonly Event[]): void {
              deepStrictEqual(run(), expected);
            },
            thenThrows<E extends Error>(errorClass: new (...args: never[]) => E, check?: (error: E) => void): void {
              try {
                run();
              } catch (error) {
                if (!(error instanceof errorClass)) throw error;
                check?.(error);
                return;
              }
              fail(`expected ${errorClass.name} to be thrown`);
            },
          };
        },
      };
    },
  };
}
