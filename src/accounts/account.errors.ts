import { DomainError } from '../shared/domain-error.js';

export class AccountNotFoundError extends DomainError {
  readonly code = 'ACCOUNT_NOT_FOUND';
  readonly kind = 'not-found';
  constructor(accountId: string) {
    super(`Account ${accountId} does not exist`, { accountId });
  }
}

export class AccountAlreadyExistsError extends DomainError {
  readonly code = 'ACCOUNT_ALREADY_EXISTS';
  readonly kind = 'conflict';
  constructor(accountId: string) {
    super(`Account ${accountId} already exists`, { accountId });
  }
}

export class AccountClosedError extends DomainError {
  readonly code = 'ACCOUNT_CLOSED';
  readonly kind = 'rule-violated';
  constructor(accountId: string) {
    super(`Account ${accountId} is closed`, { accountId });
  }
}

export class InsufficientFundsError extends DomainError {
  readonly code = 'ACCOUNT_INSUFFICIENT_FUNDS';
  readonly kind = 'rule-violated';
  constructor(accountId: string, balance: number, requested: number) {
    super(`Account ${accountId} holds ${balance}, less than the ${requested} requested`, { accountId, balance, requested });
  }
}

export class BalanceNotZeroError extends DomainError {
  readonly code = 'ACCOUNT_BALANCE_NOT_ZERO';
  readonly kind = 'rule-violated';
  constructor(accountId: string, balance: number) {
    super(`Account ${accountId} still holds ${balance}; only an account at zero can be closed`, { accountId, balance });
  }
}

export class BalanceLimitExceededError extends DomainError {
  readonly code = 'ACCOUNT_BALANCE_LIMIT_EXCEEDED';
  readonly kind = 'rule-violated';
  constructor(accountId: string, balance: number, inFlight: number, amount: number) {
    super(
      `Adding ${amount} to account ${accountId} (balance ${balance}` +
        (inFlight ? `, plus ${inFlight} sent by transfers that may still come back` : '') +
        ') would pass the largest amount a ledger balance can hold',
      { accountId, balance, inFlight, amount },
    );
  }
}

export class InvalidAmountError extends DomainError {
  readonly code = 'ACCOUNT_INVALID_AMOUNT';
  readonly kind = 'rule-violated';
  constructor(amount: unknown) {
    super(`Amount ${String(amount)} is not a positive integer of minor units`, { amount });
  }
}

export class CurrencyMismatchError extends DomainError {
  readonly code = 'ACCOUNT_CURRENCY_MISMATCH';
  readonly kind = 'rule-violated';
  constructor(accountId: string, accountCurrency: string, currency: string) {
    super(`Account ${accountId} holds ${accountCurrency}, not ${currency}`, { accountId, accountCurrency, currency });
  }
}

export class NothingToRefundError extends DomainError {
  readonly code = 'ACCOUNT_NOTHING_TO_REFUND';
  readonly kind = 'rule-violated';
  constructor(accountId: string, transferId: string) {
    super(`Transfer ${transferId} did not debit account ${accountId}; there is nothing to refund`, { accountId, transferId });
  }
}

export class TransferInFlightError extends DomainError {
  readonly code = 'ACCOUNT_TRANSFER_IN_FLIGHT';
  readonly kind = 'rule-violated';
  constructor(accountId: string, inFlight: number) {
    super(
      `Account ${accountId} has ${inFlight} sent by transfers that have not reached their target yet (and could come back); close it once they have`,
      {
        accountId,
        inFlight,
      },
    );
  }
}

export class NothingToSettleError extends DomainError {
  readonly code = 'ACCOUNT_NOTHING_TO_SETTLE';
  readonly kind = 'rule-violated';
  constructor(accountId: string, transferId: string) {
    super(`Transfer ${transferId} did not debit account ${accountId}; there is nothing to settle`, { accountId, transferId });
  }
}

/** A transfer's debit is settled or refunded, once: asking for the other way is refused. */
export class TransferAlreadyResolvedError extends DomainError {
  readonly code = 'ACCOUNT_TRANSFER_ALREADY_RESOLVED';
  readonly kind = 'conflict';
  constructor(accountId: string, transferId: string, step: 'refund' | 'settle') {
    super(
      `Transfer ${transferId} was already ${step === 'refund' ? 'settled' : 'refunded'} on account ${accountId}; it cannot also be ${step === 'refund' ? 'refunded' : 'settled'}`,
      {
        accountId,
        transferId,
      },
    );
  }
}
