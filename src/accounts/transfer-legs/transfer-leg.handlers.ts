import { CommandHandler } from '@nestjs/cqrs';
import { AccountCommandHandler } from '../account-command.handler.js';
import { creditForTransfer, debitForTransfer, refundTransfer, settleTransfer } from '../account.js';
import { CreditForTransfer, DebitForTransfer, RefundTransfer, SettleTransfer } from './transfer-leg.commands.js';

@CommandHandler(DebitForTransfer)
export class DebitForTransferHandler extends AccountCommandHandler<DebitForTransfer> {
  protected readonly decide = debitForTransfer;
}

@CommandHandler(CreditForTransfer)
export class CreditForTransferHandler extends AccountCommandHandler<CreditForTransfer> {
  protected readonly decide = creditForTransfer;
}

@CommandHandler(RefundTransfer)
export class RefundTransferHandler extends AccountCommandHandler<RefundTransfer> {
  protected readonly decide = refundTransfer;
}

@CommandHandler(SettleTransfer)
export class SettleTransferHandler extends AccountCommandHandler<SettleTransfer> {
  protected readonly decide = settleTransfer;
}
