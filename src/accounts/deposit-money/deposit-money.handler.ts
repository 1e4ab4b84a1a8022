import { CommandHandler } from '@nestjs/cqrs';
import { AccountCommandHandler } from '../account-command.handler.js';
import { depositMoney } from '../account.js';
import { DepositMoney } from './deposit-money.command.js';

@CommandHandler(DepositMoney)
export class DepositMoneyHandler extends AccountCommandHandler<DepositMoney> {
  protected readonly decide = depositMoney;
}
