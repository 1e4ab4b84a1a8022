import { CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { type AppendResult, CommandRunner } from '../../event-sourcing/index.js';
import { creditForTransfer, debitForTransfer, refundTransfer, settleTransfer } from '../account.js';
import { runAccountCommand } from '../run-account-command.js';
import { CreditForTransfer, DebitForTransfer, RefundTransfer, SettleTransfer } from './transfer-leg.commands.js';

@CommandHandler(DebitForTransfer)
export class DebitForTransferHandler implements ICommandHandler<DebitForTransfer> {
  constructor(private readonly runner: CommandRunner) {}

  execute(command: DebitForTransfer): Promise<AppendResult> {
    return runAccountCommand(this.runner, command, debitForTransfer);
  }
}

@CommandHandler(CreditForTransfer)
export class CreditForTransferHandler implements ICommandHandler<CreditForTransfer> {
  constructor(private readonly runner: CommandRunner) {}

  execute(command: CreditForTransfer): Promise<AppendResult> {
    return runAccountCommand(this.runner, command, creditForTransfer);
  }
}

@CommandHandler(RefundTransfer)
export class RefundTransferHandler implements ICommandHandler<RefundTransfer> {
  constructor(private readonly runner: CommandRunner) {}

  execute(command: RefundTransfer): Promise<AppendResult> {
    return runAccountCommand(this.runner, command, refundTransfer);
  }
}

@CommandHandler(SettleTransfer)
export class SettleTransferHandler implements ICommandHandler<SettleTransfer> {
  constructor(private readonly runner: CommandRunner) {}

  execute(command: SettleTransfer): Promise<AppendResult> {
    return runAccountCommand(this.runner, command, settleTransfer);
  }
}
