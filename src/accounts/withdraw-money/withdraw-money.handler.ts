import { CommandHandler } from '@nestjs/cqrs';
import { AccountCommandHandler } from '../account-command.handler.js';
import { withdrawMoney } from '../account.js';
import { WithdrawMoney } from './withdraw-money.command.js';

@CommandHandler(WithdrawMoney)
export class WithdrawMoneyHandler extends AccountCommandHandler<WithdrawMoney> {
  protected readonly decide = withdrawMoney;
}
