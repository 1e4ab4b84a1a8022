import { EventType } from '../event-sourcing/domain.js';

// Facts of a transfer's own stream: requested → source debited → target credited → completed, or
// failed (the debit was refused), or credit refused → source refunded → failed.

@EventType('transfers.TransferRequested')
export class TransferRequested {
  readonly transferId!: string;
  readonly fromAccountId!: string;
  readonly toAccountId!: string;
  readonly amount!: number;
  /** The source account's currency when the transfer was asked for; both legs must be in it. */
  readonly currency!: string;
  readonly reference!: string | null;
  constructor(data: TransferRequested) {
    Object.assign(this, data);
  }
}

@EventType('transfers.SourceDebited')
export class SourceDebited {
  readonly transferId!: string;
  constructor(data: SourceDebited) {
    Object.assign(this, data);
  }
}

@EventType('transfers.TargetCredited')
export class TargetCredited {
  readonly transferId!: string;
  constructor(data: TargetCredited) {
    Object.assign(this, data);
  }
}

@EventType('transfers.TransferCompleted')
export class TransferCompleted {
  readonly transferId!: string;
  constructor(data: TransferCompleted) {
    Object.assign(this, data);
  }
}

/** The target refused the credit after the source was debited: the source must be refunded. */
@EventType('transfers.CreditRefused')
export class CreditRefused {
  readonly transferId!: string;
  readonly code!: string;
  readonly reason!: string;
  constructor(data: CreditRefused) {
    Object.assign(this, data);
  }
}

@EventType('transfers.SourceRefunded')
export class SourceRefunded {
  readonly transferId!: string;
  constructor(data: SourceRefunded) {
    Object.assign(this, data);
  }
}

@EventType('transfers.TransferFailed')
export class TransferFailed {
  readonly transferId!: string;
  /** Why, as a stable code: ACCOUNT_INSUFFICIENT_FUNDS, ACCOUNT_CLOSED, ACCOUNT_CURRENCY_MISMATCH… */
  readonly code!: string;
  readonly reason!: string;
  /** True when the source had been debited and was refunded before failing. */
  readonly refunded!: boolean;
  constructor(data: TransferFailed) {
    Object.assign(this, data);
  }
}

export type TransferEvent =
  TransferRequested | SourceDebited | TargetCredited | TransferCompleted | CreditRefused | SourceRefunded | TransferFailed;

export const TRANSFER_EVENTS = [
  TransferRequested,
  SourceDebited,
  TargetCredited,
  TransferCompleted,
  CreditRefused,
  SourceRefunded,
  TransferFailed,
];
