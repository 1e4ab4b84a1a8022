import { CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { type AppendResult, CommandRunner } from '../../event-sourcing/index.js';
import { closeAccount } from '../account.js';
import { runAccountCommand } from '../run-account-command.js';
import { CloseAccount } from './close-account.command.js';

@CommandHandler(CloseAccount)
export class CloseAccountHandler implements ICommandHandler<CloseAccount> {
  constructor(private readonly runner: CommandRunner) {}

  execute(command: CloseAccount): Promise<AppendResult> {
    return runAccountCommand(this.runner, command, closeAccount);
  }
}
