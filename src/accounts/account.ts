import type { Decider } from '../event-sourcing/domain.js';
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
  NothingToSettleError,
  TransferAlreadyResolvedError,
  TransferInFlightError,
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
  TransferSettled,
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
       * Transfer legs already applied ("debit:<id>", "credit:<id>", "refund:<id>", "settle:<id>"):
       * what makes a repeated transfer step a no-op. Shared along one fold for speed (evolve adds to
       * it rather than copying it), so never keep an intermediate state of a fold.
       */
      readonly transferSteps: ReadonlySet<string>;
      /**
       * Sent by transfers that have not settled (reached their target) nor been refunded: money that
       * may still come back. Closing waits for it to be 0, and balance + inFlight never exceeds the
       * largest amount, so a refund can never overflow.
       */
      readonly inFlight: number;
      /** The transfers behind inFlight, with the amount each debited (shared along a fold, like transferSteps). */
      readonly openDebits: ReadonlyMap<string, number>;
    };

type ExistingAccount = Exclude<AccountState, { status: 'none' }>;

export function accountStreamId(accountId: string): string {
  return `account-${accountId}`;
}

const TRANSFER_STEP = new Map<Function, string>([
  [TransferDebited, 'debit'],
  [TransferCredited, 'credit'],
  [TransferRefunded, 'refund'],
  [TransferSettled, 'settle'],
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
      inFlight: 0,
      openDebits: new Map(),
    };
  }
  if (state.status === 'none') return state; // unreachable for a well-formed stream
  if (event instanceof AccountClosed) return { ...state, status: 'closed' };
  const step = TRANSFER_STEP.get(event.constructor);
  if (step) (state.transferSteps as Set<string>).add(`${step}:${(event as TransferDebited).transferId}`);
  const openDebits = state.openDebits as Map<string, number>;
  let inFlight = state.inFlight;
  if (event instanceof TransferDebited) {
    openDebits.set(event.transferId, event.amount);
    inFlight += event.amount;
  } else if (event instanceof TransferSettled || event instanceof TransferRefunded) {
    inFlight -= openDebits.get(event.transferId) ?? 0;
    openDebits.delete(event.transferId);
  }
  return { ...state, inFlight, balance: isBalanceChange(event) ? event.balanceAfter : state.balance };
}

/** The JSON shape of a snapshotted account. Bump schemaVersion whenever AccountState changes shape. */
type AccountSnapshot =
  | { status: 'none' }
  | (Omit<ExistingAccount, 'transferSteps' | 'openDebits'> & { transferSteps: string[]; openDebits: Array<[string, number]> });

export const accountDecider: Decider<AccountState, AccountEvent> = {
  initialState: { status: 'none' },
  evolve,
  // evolve adds to transferSteps and openDebits in place: a unit of work folds copies of them.
  copy: (state) =>
    state.status === 'none' ? state : { ...state, transferSteps: new Set(state.transferSteps), openDebits: new Map(state.openDebits) },
  snapshots: {
    aggregate: 'account',
    schemaVersion: 3, // 2: inFlight; 3: openDebits
    encode: (state): AccountSnapshot =>
      state.status === 'none' ? state : { ...state, transferSteps: [...state.transferSteps], openDebits: [...state.openDebits] },
    decode: (json): AccountState => {
      const snapshot = json as AccountSnapshot;
      return snapshot.status === 'none'
        ? snapshot
        : { ...snapshot, transferSteps: new Set(snapshot.transferSteps), openDebits: new Map(snapshot.openDebits) };
    },
  },
};

export function openAccount(state: AccountState, command: { accountId: string; ownerName: string; currency: string }): AccountEvent[] {
  if (state.status !== 'none') throw new AccountAlreadyExistsError(command.accountId);
  return [new AccountOpened({ accountId: command.accountId, ownerName: command.ownerName, currency: command.currency })];
}

export function depositMoney(
  state: AccountState,
  command: { accountId: string; amount: number; reference?: string | null },
): AccountEvent[] {
  const account = openAccountOrThrow(state, command.accountId);
  assertAmount(command.amount);
  assertRoomFor(account, command.amount);
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
  if (account.inFlight !== 0) throw new TransferInFlightError(account.accountId, account.inFlight);
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
  return [
    new TransferDebited({
      accountId: account.accountId,
      transferId: leg.transferId,
      amount: leg.amount,
      balanceAfter: account.balance - leg.amount,
    }),
  ];
}

/** The incoming leg of a transfer; nothing new if this transfer already credited the account. */
export function creditForTransfer(state: AccountState, leg: TransferLeg): AccountEvent[] {
  if (state.status !== 'none' && state.transferSteps.has(`credit:${leg.transferId}`)) return [];
  const account = openAccountOrThrow(state, leg.accountId);
  assertAmount(leg.amount);
  assertCurrency(account, leg.currency);
  assertRoomFor(account, leg.amount);
  return [
    new TransferCredited({
      accountId: account.accountId,
      transferId: leg.transferId,
      amount: leg.amount,
      balanceAfter: account.balance + leg.amount,
    }),
  ];
}

/**
 * Gives back what a transfer debited when its credit was refused — the amount it debited, whatever
 * the command says. Never refused by the rules: the account cannot have been closed meanwhile
 * (closing waits for money in flight), and its headroom kept room for it (balance + inFlight never
 * exceeds the largest amount). A transfer is refunded or settled, never both.
 */
export function refundTransfer(state: AccountState, leg: TransferLeg): AccountEvent[] {
  const amount = openDebitOf(state, leg, 'refund');
  if (amount === undefined) return [];
  const account = state as ExistingAccount;
  return [
    new TransferRefunded({ accountId: account.accountId, transferId: leg.transferId, amount, balanceAfter: account.balance + amount }),
  ];
}

/** The transfer that debited this account was credited to its target: its money is no longer in flight. */
export function settleTransfer(state: AccountState, leg: TransferLeg): AccountEvent[] {
  const amount = openDebitOf(state, leg, 'settle');
  if (amount === undefined) return [];
  return [new TransferSettled({ accountId: (state as ExistingAccount).accountId, transferId: leg.transferId, amount })];
}

/**
 * What a transfer debited and has not yet been settled or refunded; undefined when this very step
 * was already taken (a repeat: nothing to do). Refuses the other way of resolving a debit.
 */
function openDebitOf(state: AccountState, leg: TransferLeg, step: 'refund' | 'settle'): number | undefined {
  if (state.status === 'none') throw new AccountNotFoundError(leg.accountId);
  if (state.transferSteps.has(`${step}:${leg.transferId}`)) return undefined;
  const amount = state.openDebits.get(leg.transferId);
  if (amount !== undefined) return amount;
  if (state.transferSteps.has(`debit:${leg.transferId}`)) throw new TransferAlreadyResolvedError(state.accountId, leg.transferId, step);
  throw step === 'refund'
    ? new NothingToRefundError(leg.accountId, leg.transferId)
    : new NothingToSettleError(leg.accountId, leg.transferId);
}

/** Balance + money in flight + amount must stay a safe integer (so a later refund always fits). */
function assertRoomFor(account: ExistingAccount, amount: number): void {
  if (amount > MAX_MINOR_UNITS - account.balance - account.inFlight) {
    throw new BalanceLimitExceededError(account.accountId, account.balance, account.inFlight, amount);
  }
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
