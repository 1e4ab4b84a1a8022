import type { Decider } from '../event-sourcing/index.js';
import { MAX_MINOR_UNITS, isPositiveMinorUnits } from '../shared/money.js';
import {
  AccountAlreadyExistsError,
  AccountClosedError,
  AccountNotFoundError,
  BalanceLimitExceededError,
  BalanceNotZeroError,
  InsufficientFundsError,
  InvalidAmountError,
} from './account.errors.js';
import { AccountClosed, type AccountEvent, AccountOpened, MoneyDeposited, MoneyWithdrawn } from './account.events.js';

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
    };

type ExistingAccount = Exclude<AccountState, { status: 'none' }>;

export function accountStreamId(accountId: string): string {
  return `account-${accountId}`;
}

export function evolve(state: AccountState, event: AccountEvent): AccountState {
  if (event instanceof AccountOpened) {
    return { status: 'open', accountId: event.accountId, ownerName: event.ownerName, currency: event.currency, balance: 0 };
  }
  if (state.status === 'none') return state; // unreachable for a well-formed stream
  if (event instanceof MoneyDeposited || event instanceof MoneyWithdrawn) return { ...state, balance: event.balanceAfter };
  if (event instanceof AccountClosed) return { ...state, status: 'closed' };
  return state;
}

export const accountDecider: Decider<AccountState, AccountEvent> = { initialState: { status: 'none' }, evolve };

export function openAccount(
  state: AccountState,
  command: { accountId: string; ownerName: string; currency: string },
): AccountEvent[] {
  if (state.status !== 'none') throw new AccountAlreadyExistsError(command.accountId);
  return [new AccountOpened({ accountId: command.accountId, ownerName: command.ownerName, currency: command.currency })];
}

export function depositMoney(state: AccountState, command: { accountId: string; amount: number }): AccountEvent[] {
  const account = openAccountOrThrow(state, command.accountId);
  assertAmount(command.amount);
  if (command.amount > MAX_MINOR_UNITS - account.balance) {
    throw new BalanceLimitExceededError(account.accountId, account.balance, command.amount);
  }
  return [new MoneyDeposited({ accountId: account.accountId, amount: command.amount, balanceAfter: account.balance + command.amount })];
}

export function withdrawMoney(state: AccountState, command: { accountId: string; amount: number }): AccountEvent[] {
  const account = openAccountOrThrow(state, command.accountId);
  assertAmount(command.amount);
  if (command.amount > account.balance) {
    throw new InsufficientFundsError(account.accountId, account.balance, command.amount);
  }
  return [new MoneyWithdrawn({ accountId: account.accountId, amount: command.amount, balanceAfter: account.balance - command.amount })];
}

export function closeAccount(state: AccountState, command: { accountId: string }): AccountEvent[] {
  const account = openAccountOrThrow(state, command.accountId);
  if (account.balance !== 0) throw new BalanceNotZeroError(account.accountId, account.balance);
  return [new AccountClosed({ accountId: account.accountId })];
}

function openAccountOrThrow(state: AccountState, accountId: string): ExistingAccount {
  if (state.status === 'none') throw new AccountNotFoundError(accountId);
  if (state.status === 'closed') throw new AccountClosedError(accountId);
  return state;
}

function assertAmount(amount: number): void {
  if (!isPositiveMinorUnits(amount)) throw new InvalidAmountError(amount);
}
