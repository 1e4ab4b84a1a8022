import { describe, expect, it } from '@jest/globals';
import { deciderSpec } from '../event-sourcing/testing/decider-spec.js';
import { accountDecider, closeAccount, depositMoney, openAccount, withdrawMoney } from './account.js';
import {
  AccountAlreadyExistsError,
  AccountClosedError,
  AccountNotFoundError,
  BalanceLimitExceededError,
  BalanceNotZeroError,
  InsufficientFundsError,
  InvalidAmountError,
} from './account.errors.js';
import { AccountClosed, AccountOpened, MoneyDeposited, MoneyWithdrawn } from './account.events.js';

const accountId = '5b0e8c1e-7a4f-4b8e-9d55-3a3f5c2f4d10';
const spec = deciderSpec(accountDecider);
const opened = new AccountOpened({ accountId, ownerName: 'Ada', currency: 'EUR' });
const deposited = (amount: number, balanceAfter: number) => new MoneyDeposited({ accountId, amount, balanceAfter });
const withdrawn = (amount: number, balanceAfter: number) => new MoneyWithdrawn({ accountId, amount, balanceAfter });
const closed = new AccountClosed({ accountId });

describe('account', () => {
  describe('open', () => {
    it('opens a new account', () =>
      spec
        .given([])
        .when((state) => openAccount(state, { accountId, ownerName: 'Ada', currency: 'EUR' }))
        .then([opened]));

    it('refuses to open an account twice', () =>
      spec
        .given([opened])
        .when((state) => openAccount(state, { accountId, ownerName: 'Ada', currency: 'EUR' }))
        .thenThrows(AccountAlreadyExistsError));
  });

  describe('deposit', () => {
    it('adds the amount and records the balance after it', () =>
      spec
        .given([opened, deposited(100, 100)])
        .when((state) => depositMoney(state, { accountId, amount: 50 }))
        .then([deposited(50, 150)]));

    it('refuses an unknown account', () =>
      spec
        .given([])
        .when((state) => depositMoney(state, { accountId, amount: 50 }))
        .thenThrows(AccountNotFoundError));

    it('refuses a closed account', () =>
      spec
        .given([opened, closed])
        .when((state) => depositMoney(state, { accountId, amount: 50 }))
        .thenThrows(AccountClosedError));

    it.each([0, -1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 1])('refuses the amount %p', (amount) =>
      spec
        .given([opened])
        .when((state) => depositMoney(state, { accountId, amount }))
        .thenThrows(InvalidAmountError),
    );

    it('refuses a deposit that would take the balance past 2^53 - 1', () =>
      spec
        .given([opened, deposited(Number.MAX_SAFE_INTEGER - 10, Number.MAX_SAFE_INTEGER - 10)])
        .when((state) => depositMoney(state, { accountId, amount: 11 }))
        .thenThrows(BalanceLimitExceededError));

    it('accepts a deposit up to exactly 2^53 - 1', () =>
      spec
        .given([opened, deposited(Number.MAX_SAFE_INTEGER - 10, Number.MAX_SAFE_INTEGER - 10)])
        .when((state) => depositMoney(state, { accountId, amount: 10 }))
        .then([deposited(10, Number.MAX_SAFE_INTEGER)]));
  });

  describe('withdraw', () => {
    it('takes the amount and records the balance after it', () =>
      spec
        .given([opened, deposited(100, 100)])
        .when((state) => withdrawMoney(state, { accountId, amount: 30 }))
        .then([withdrawn(30, 70)]));

    it('may empty the account exactly', () =>
      spec
        .given([opened, deposited(100, 100)])
        .when((state) => withdrawMoney(state, { accountId, amount: 100 }))
        .then([withdrawn(100, 0)]));

    it('refuses to go beyond the balance, saying what the balance is', () =>
      spec
        .given([opened, deposited(100, 100), withdrawn(60, 40)])
        .when((state) => withdrawMoney(state, { accountId, amount: 41 }))
        .thenThrows(InsufficientFundsError, (error) => expect(error.details).toEqual({ accountId, balance: 40, requested: 41 })));

    it('refuses an unknown account', () =>
      spec
        .given([])
        .when((state) => withdrawMoney(state, { accountId, amount: 1 }))
        .thenThrows(AccountNotFoundError));

    it('refuses a closed account', () =>
      spec
        .given([opened, closed])
        .when((state) => withdrawMoney(state, { accountId, amount: 1 }))
        .thenThrows(AccountClosedError));

    it('refuses a non-integer amount', () =>
      spec
        .given([opened, deposited(100, 100)])
        .when((state) => withdrawMoney(state, { accountId, amount: 0.5 }))
        .thenThrows(InvalidAmountError));
  });

  describe('close', () => {
    it('closes an account at zero balance', () =>
      spec
        .given([opened, deposited(10, 10), withdrawn(10, 0)])
        .when((state) => closeAccount(state, { accountId }))
        .then([closed]));

    it('refuses while money remains', () =>
      spec
        .given([opened, deposited(10, 10)])
        .when((state) => closeAccount(state, { accountId }))
        .thenThrows(BalanceNotZeroError, (error) => expect(error.details.balance).toBe(10)));

    it('refuses to close twice', () =>
      spec
        .given([opened, closed])
        .when((state) => closeAccount(state, { accountId }))
        .thenThrows(AccountClosedError));

    it('refuses an unknown account', () =>
      spec
        .given([])
        .when((state) => closeAccount(state, { accountId }))
        .thenThrows(AccountNotFoundError));
  });
});
