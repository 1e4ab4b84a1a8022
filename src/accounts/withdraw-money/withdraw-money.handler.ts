import { CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { type AppendResult, CommandRunner } from '../../event-sourcing/index.js';
import { withdrawMoney } from '../account.js';
import { runAccountCommand } from '../run-account-command.js';
import { WithdrawMoney } from './withdraw-money.command.js';

@CommandHandler(WithdrawMoney)
export class WithdrawMoneyHandler implements ICommandHandler<WithdrawMoney> {
  constructor(private readonly runner: CommandRunner) {}

  execute(command: WithdrawMoney): Promise<AppendResult> {
    return runAccountCommand(this.runner, command, withdrawMoney);
  }
}
