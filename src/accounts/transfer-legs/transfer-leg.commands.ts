import { Command } from '@nestjs/cqrs';
import type { AppendResult, CommandMetadata } from '../../event-sourcing/index.js';
import type { TransferLeg } from '../account.js';

// The account side of a transfer, sent by the transfer process manager (never over HTTP). Each is
// idempotent per transfer id: sent twice, the second changes nothing and succeeds. Their metadata
// is the transfer's correlation, the event that triggered the step as causation, actor transfer-process.

export class DebitForTransfer extends Command<AppendResult> implements TransferLeg {
  constructor(
    readonly accountId: string,
    readonly transferId: string,
    readonly amount: number,
    readonly currency: string,
    readonly metadata?: CommandMetadata,
  ) {
    super();
  }
}

export class CreditForTransfer extends Command<AppendResult> implements TransferLeg {
  constructor(
    readonly accountId: string,
    readonly transferId: string,
    readonly amount: number,
    readonly currency: string,
    readonly metadata?: CommandMetadata,
  ) {
    super();
  }
}

export class RefundTransfer extends Command<AppendResult> implements TransferLeg {
  constructor(
    readonly accountId: string,
    readonly transferId: string,
    readonly amount: number,
    readonly currency: string,
    readonly metadata?: CommandMetadata,
  ) {
    super();
  }
}

export class SettleTransfer extends Command<AppendResult> implements TransferLeg {
  constructor(
    readonly accountId: string,
    readonly transferId: string,
    readonly amount: number,
    readonly currency: string,
    readonly metadata?: CommandMetadata,
  ) {
    super();
  }
}
