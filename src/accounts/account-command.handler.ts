import { Injectable } from '@nestjs/common';
import { type AppendResult, CommandRunner } from '../event-sourcing/index.js';
import { type AccountState, accountDecider, accountStreamId } from './account.js';
import type { AccountEvent } from './account.events.js';

export interface AccountCommand {
  readonly accountId: string;
  /** From If-Match: the account version the caller saw, or undefined for "whatever is current". */
  readonly expectedVersion?: number;
}

/**
 * Every account command is handled the same way: load the account's stream, decide with one of the
 * pure functions of account.ts, append. Concrete handlers only name the decide function.
 */
@Injectable() // emits the constructor's parameter types for the concrete handlers to inherit
export abstract class AccountCommandHandler<C extends AccountCommand> {
  protected abstract readonly decide: (state: AccountState, command: C) => AccountEvent[];

  constructor(private readonly runner: CommandRunner) {}

  execute(command: C): Promise<AppendResult> {
    return this.runner.run({
      streamId: accountStreamId(command.accountId),
      decider: accountDecider,
      decide: (state) => this.decide(state, command),
      expectedVersion: command.expectedVersion,
    });
  }
}
