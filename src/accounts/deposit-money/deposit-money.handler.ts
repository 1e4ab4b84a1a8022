import { CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { type AppendResult, CommandRunner } from '../../event-sourcing/index.js';
import { depositMoney } from '../account.js';
import { runAccountCommand } from '../run-account-command.js';
import { DepositMoney } from './deposit-money.command.js';

@CommandHandler(DepositMoney)
export class DepositMoneyHandler implements ICommandHandler<DepositMoney> {
  constructor(private readonly runner: CommandRunner) {}

  execute(command: DepositMoney): Promise<AppendResult> {
    return runAccountCommand(this.runner, command, depositMoney);
  }
}
