import { CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { type AppendResult, CommandRunner } from '../../event-sourcing/index.js';
import { openAccount } from '../account.js';
import { runAccountCommand } from '../run-account-command.js';
import { OpenAccount } from './open-account.command.js';

@CommandHandler(OpenAccount)
export class OpenAccountHandler implements ICommandHandler<OpenAccount> {
  constructor(private readonly runner: CommandRunner) {}

  execute(command: OpenAccount): Promise<AppendResult> {
    return runAccountCommand(this.runner, command, openAccount);
  }
}
