import { type AppendResult, type CommandMetadata, CommandRunner } from '../event-sourcing/index.js';
import { type AccountState, accountDecider, accountStreamId } from './account.js';
import type { AccountEvent } from './account.events.js';

export interface AccountCommand {
  readonly accountId: string;
  /** From If-Match: the account version the caller saw, or undefined for "whatever is current". */
  readonly expectedVersion?: number;
  /** Correlation, causation and actor, copied into the metadata of every event the command appends. */
  readonly metadata?: CommandMetadata;
}

/**
 * Every account command is handled the same way: load the account's stream, decide with one of the
 * pure functions of account.ts, append with the command's metadata (CommandRunner retries a lost
 * race by deciding again, unless the caller gave an expected version).
 */
export function runAccountCommand<C extends AccountCommand>(
  runner: CommandRunner,
  command: C,
  decide: (state: AccountState, command: C) => AccountEvent[],
): Promise<AppendResult> {
  return runner.run({
    streamId: accountStreamId(command.accountId),
    decider: accountDecider,
    decide: (state) => decide(state, command),
    expectedVersion: command.expectedVersion,
    metadata: command.metadata,
  });
}
