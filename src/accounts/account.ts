import type { Decider } from '../event-sourcing/index.js';
import { MAX_MINOR_UNITS, isPositiveMinorUnits } from '../shared/money.js';
import {
  AccountAlreadyExistsError,
  AccountClosedError,
  AccountNotFoundError,
  BalanceLimitExceededError,
  BalanceNotZeroError,
  CurrencyMismatchError,
  InsufficientFundsError,
  InvalidAmountError,
  NothingToRefundError,
} from './account.errors.js';
import {
  AccountClosed,
  type AccountEvent,
  AccountOpened,
  MoneyDeposited,
  MoneyWithdrawn,
  TransferCredited,
  TransferDebited,
  TransferRefunded,
  isBalanceChange,
} from './account.events.js';

// The account aggregate as pure functions: evolve folds events into state, the decide functions
// turn a command and the current state into new events or a typed domain error. No I/O, no clock.

export type AccountStatus = 'open' | 'closed';

export type AccountState =
  | { readonly status: 'none' }
  | {
      readonly status: AccountStatus;
      readonly accountId: string;
      readonly ownerName: string;
      readonly currency: string;
      readonly balance: number;
      /**
       * Transfer legs already applied ("debit:<id>", "credit:<id>", "refund:<id>"): what makes a
       * repeated transfer step a no-op. Shared along one fold for speed (evolve adds to it rather than
       * copying it), so never keep an intermediate state of a fold.
       */
      readonly transferSteps: ReadonlySet<string>;
    };

type ExistingAccount = Exclude<AccountState, { status: 'none' }>;

export function accountStreamId(accountId: string): string {
  return `account-${accountId}`;
}

const TRANSFER_STEP = new Map<Function, string>([
  [TransferDebited, 'debit'],
  [TransferCredited, 'credit'],
  [TransferRefunded, 'refund'],
]);

export function evolve(state: AccountState, event: AccountEvent): AccountState {
  if (event instanceof AccountOpened) {
    return {
      status: 'open',
      accountId: event.accountId,
      ownerName: event.ownerName,
      currency: event.currency,
      balance: 0,
      transferSteps: new Set(),
    };
  }
  if (state.status === 'none') return state; // unreachable for a well-formed stream
  if (event instanceof AccountClosed) return { ...state, status: 'closed' };
  if (!isBalanceChange(event)) return state;
  const step = TRANSFER_STEP.get(event.constructor);
  if (step) (state.transferSteps as Set<string>).add(`${step}:${(event as TransferDebited).transferId}`);
  return { ...state, balance: event.balanceAfter };
}

/** The JSON shape of a snapshotted account. Bump schemaVersion whenever AccountState changes shape. */
type AccountSnapshot = { status: 'none' } | (Omit<ExistingAccount, 'transferSteps'> & { transferSteps: string[] });

export const accountDecider: Decider<AccountState, AccountEvent> = {
  initialState: { status: 'none' },
  evolve,
  snapshots: {
    aggregate: 'account',
    schemaVersion: 1,
    encode: (state): AccountSnapshot => (state.status === 'none' ? state : { ...state, transferSteps: [...state.transferSteps] }),
    decode: (json): AccountState => {
      const snapshot = json as AccountSnapshot;
      return snapshot.status === 'none' ? snapshot : { ...snapshot, transferSteps: new Set(snapshot.transferSteps) };
    },
  },
};

export function openAccount(
  state: AccountState,
  command: { accountId: string; ownerName: string; currency: string },
): AccountEvent[] {
  if (state.status !== 'none') throw new AccountAlreadyExistsError(command.accountId);
  return [new AccountOpened({ accountId: command.accountId, ownerName: command.ownerName, currency: command.currency })];
}

export function depositMoney(
  state: AccountState,
  command: { accountId: string; amount: number; reference?: string | null },
): AccountEvent[] {
  const account = openAccountOrThrow(state, command.accountId);
  assertAmount(command.amount);
  if (command.amount > MAX_MINOR_UNITS - account.balance) {
    throw new BalanceLimitExceededError(account.accountId, account.balance, command.amount);
  }
  return [
    new MoneyDeposited({
      accountId: account.accountId,
      amount: command.amount,
      balanceAfter: account.balance + command.amount,
      reference: command.reference,
    }),
  ];
}

export function withdrawMoney(
  state: AccountState,
  command: { accountId: string; amount: number; reference?: string | null },
): AccountEvent[] {
  const account = openAccountOrThrow(state, command.accountId);
  assertAmount(command.amount);
  if (command.amount > account.balance) {
    throw new InsufficientFundsError(account.accountId, account.balance, command.amount);
  }
  return [
    new MoneyWithdrawn({
      accountId: account.accountId,
      amount: command.amount,
      balanceAfter: account.balance - command.amount,
      reference: command.reference,
    }),
  ];
}

export function closeAccount(state: AccountState, command: { accountId: string }): AccountEvent[] {
  const account = openAccountOrThrow(state, command.accountId);
  if (account.balance !== 0) throw new BalanceNotZeroError(account.accountId, account.balance);
  return [new AccountClosed({ accountId: account.accountId })];
}

export interface TransferLeg {
  readonly accountId: string;
  readonly transferId: string;
  readonly amount: number;
  /** The transfer's currency: the account must hold the same. */
  readonly currency: string;
}

/** The outgoing leg of a transfer; nothing new if this transfer already debited the account. */
export function debitForTransfer(state: AccountState, leg: TransferLeg): AccountEvent[] {
  if (state.status !== 'none' && state.transferSteps.has(`debit:${leg.transferId}`)) return [];
  const account = openAccountOrThrow(state, leg.accountId);
  assertAmount(leg.amount);
  assertCurrency(account, leg.currency);
  if (leg.amount > account.balance) throw new InsufficientFundsError(account.accountId, account.balance, leg.amount);
  return [new TransferDebited({ accountId: account.accountId, transferId: leg.transferId, amount: leg.amount, balanceAfter: account.balance - leg.amount })];
}

/** The incoming leg of a transfer; nothing new if this transfer already credited the account. */
export function creditForTransfer(state: AccountState, leg: TransferLeg): AccountEvent[] {
  if (state.status !== 'none' && state.transferSteps.has(`credit:${leg.transferId}`)) return [];
  const account = openAccountOrThrow(state, leg.accountId);
  assertAmount(leg.amount);
  assertCurrency(account, leg.currency);
  if (leg.amount > MAX_MINOR_UNITS - account.balance) {
    throw new BalanceLimitExceededError(account.accountId, account.balance, leg.amount);
  }
  return [new TransferCredited({ accountId: account.accountId, transferId: leg.transferId, amount: leg.amount, balanceAfter: account.balance + leg.amount })];
}

/**
 * Gives back what a transfer debited when its credit was refused. Allowed on a closed account: the
 * money left it for a transfer that did not happen, and must come back whatever happened since.
 */
export function refundTransfer(state: AccountState, leg: TransferLeg): AccountEvent[] {
  if (state.status === 'none') throw new AccountNotFoundError(leg.accountId);
  if (state.transferSteps.has(`refund:${leg.transferId}`)) return [];
  if (!state.transferSteps.has(`debit:${leg.transferId}`)) throw new NothingToRefundError(leg.accountId, leg.transferId);
  return [new TransferRefunded({ accountId: state.accountId, transferId: leg.transferId, amount: leg.amount, balanceAfter: state.balance + leg.amount })];
}

function assertCurrency(account: ExistingAccount, currency: string): void {
  if (account.currency !== currency) throw new CurrencyMismatchError(account.accountId, account.currency, currency);
}

function openAccountOrThrow(state: AccountState, accountId: string): ExistingAccount {
  if (state.status === 'none') throw new AccountNotFoundError(accountId);
  if (state.status === 'closed') throw new AccountClosedError(accountId);
  return state;
}

function assertAmount(amount: number): void {
  if (!isPositiveMinorUnits(amount)) throw new InvalidAmountError(amount);
}
