import { describe, expect, it } from '@jest/globals';
import { fold } from '../event-sourcing/decider.js';
import { deciderSpec } from '../event-sourcing/testing/decider-spec.js';
import { MAX_MINOR_UNITS } from '../shared/money.js';
import { type TransferLeg, accountDecider, creditForTransfer, debitForTransfer, refundTransfer } from './account.js';
import {
  AccountClosedError,
  AccountNotFoundError,
  BalanceLimitExceededError,
  CurrencyMismatchError,
  InsufficientFundsError,
  InvalidAmountError,
  NothingToRefundError,
} from './account.errors.js';
import {
  AccountClosed,
  AccountOpened,
  MoneyDeposited,
  MoneyWithdrawn,
  TransferCredited,
  TransferDebited,
  TransferRefunded,
} from './account.events.js';

// The account side of a transfer, given(events) / when(leg) / then(events | error): the debit of the
// source, the credit of the target and the refund of the source. Each leg is idempotent per transfer
// id (the account remembers the legs it applied), which is what lets the process manager retry or
// replay any step without moving money twice.

const accountId = '5b0e8c1e-7a4f-4b8e-9d55-3a3f5c2f4d10';
const transferId = '9c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f';
const otherTransferId = '2f3e4d5c-6b7a-4989-a0b1-c2d3e4f5a6b7';
const spec = deciderSpec(accountDecider);

const opened = new AccountOpened({ accountId, ownerName: 'Ada', currency: 'EUR' });
const deposited = (amount: number, balanceAfter: number) => new MoneyDeposited({ accountId, amount, balanceAfter });
const closed = new AccountClosed({ accountId });
const debited = (amount: number, balanceAfter: number, id = transferId) =>
  new TransferDebited({ accountId, transferId: id, amount, balanceAfter });
const credited = (amount: number, balanceAfter: number, id = transferId) =>
  new TransferCredited({ accountId, transferId: id, amount, balanceAfter });
const refunded = (amount: number, balanceAfter: number, id = transferId) =>
  new TransferRefunded({ accountId, transferId: id, amount, balanceAfter });
const leg = (amount: number, overrides: Partial<TransferLeg> = {}): TransferLeg => ({ accountId, transferId, amount, currency: 'EUR', ...overrides });

describe('account transfer legs', () => {
  describe('debit of the source', () => {
    it('takes the amount and records the balance after it, with the transfer id', () =>
      spec.given([opened, deposited(1000, 1000)]).when((state) => debitForTransfer(state, leg(300))).then([debited(300, 700)]));

    it('may take the whole balance', () =>
      spec.given([opened, deposited(1000, 1000)]).when((state) => debitForTransfer(state, leg(1000))).then([debited(1000, 0)]));

    it('debits once per transfer: asked again, decides nothing', () =>
      spec.given([opened, deposited(1000, 1000), debited(300, 700)]).when((state) => debitForTransfer(state, leg(300))).then([]));

    it('is idempotent per transfer id, whatever the repeated leg says', () =>
      spec.given([opened, deposited(1000, 1000), debited(300, 700)]).when((state) => debitForTransfer(state, leg(999, { currency: 'USD' }))).then([]));

    it('repeats as a no-op even once the account is closed or empty (a replay after the fact)', () =>
      spec
        .given([opened, deposited(300, 300), debited(300, 0), closed])
        .when((state) => debitForTransfer(state, leg(300)))
        .then([]));

    it('debits another transfer of the same account', () =>
      spec
        .given([opened, deposited(1000, 1000), debited(300, 700)])
        .when((state) => debitForTransfer(state, leg(200, { transferId: otherTransferId })))
        .then([debited(200, 500, otherTransferId)]));

    it('refuses more than the balance', () =>
      spec
        .given([opened, deposited(100, 100)])
        .when((state) => debitForTransfer(state, leg(101)))
        .thenThrows(InsufficientFundsError, (error) => {
          expect(error.code).toBe('ACCOUNT_INSUFFICIENT_FUNDS');
          expect(error.details).toEqual({ accountId, balance: 100, requested: 101 });
        }));

    it('refuses a closed account', () =>
      spec.given([opened, closed]).when((state) => debitForTransfer(state, leg(1))).thenThrows(AccountClosedError));

    it('refuses an unknown account', () =>
      spec.given([]).when((state) => debitForTransfer(state, leg(1))).thenThrows(AccountNotFoundError));

    it('refuses another currency than the account holds', () =>
      spec
        .given([opened, deposited(1000, 1000)])
        .when((state) => debitForTransfer(state, leg(10, { currency: 'USD' })))
        .thenThrows(CurrencyMismatchError, (error) => expect(error.code).toBe('ACCOUNT_CURRENCY_MISMATCH')));

    it.each([0, -1, 1.5, Number.NaN, MAX_MINOR_UNITS + 1])('refuses the amount %p', (amount) =>
      spec.given([opened, deposited(1000, 1000)]).when((state) => debitForTransfer(state, leg(amount))).thenThrows(InvalidAmountError));
  });

  describe('credit of the target', () => {
    it('adds the amount and records the balance after it, with the transfer id', () =>
      spec.given([opened, deposited(50, 50)]).when((state) => creditForTransfer(state, leg(300))).then([credited(300, 350)]));

    it('credits once per transfer: asked again, decides nothing', () =>
      spec.given([opened, credited(300, 300)]).when((state) => creditForTransfer(state, leg(300))).then([]));

    it('a credit of a transfer is not a debit of it: both legs may hit one account', () =>
      spec.given([opened, credited(300, 300)]).when((state) => debitForTransfer(state, leg(300))).then([debited(300, 0)]));

    it('refuses a closed account (the transfer is then refunded)', () =>
      spec.given([opened, closed]).when((state) => creditForTransfer(state, leg(300))).thenThrows(AccountClosedError));

    it('refuses an unknown account', () =>
      spec.given([]).when((state) => creditForTransfer(state, leg(300))).thenThrows(AccountNotFoundError));

    it('refuses another currency than the account holds', () =>
      spec.given([opened]).when((state) => creditForTransfer(state, leg(300, { currency: 'USD' }))).thenThrows(CurrencyMismatchError));

    it('refuses a credit that would take the balance past 2^53 - 1', () =>
      spec
        .given([opened, deposited(MAX_MINOR_UNITS - 10, MAX_MINOR_UNITS - 10)])
        .when((state) => creditForTransfer(state, leg(11)))
        .thenThrows(BalanceLimitExceededError));

    it('accepts a credit up to exactly 2^53 - 1', () =>
      spec
        .given([opened, deposited(MAX_MINOR_UNITS - 10, MAX_MINOR_UNITS - 10)])
        .when((state) => creditForTransfer(state, leg(10)))
        .then([credited(10, MAX_MINOR_UNITS)]));

    it.each([0, -1, 1.5])('refuses the amount %p', (amount) =>
      spec.given([opened]).when((state) => creditForTransfer(state, leg(amount))).thenThrows(InvalidAmountError));
  });

  describe('refund of the source', () => {
    const afterDebit = [opened, deposited(1000, 1000), debited(300, 700)];

    it('gives back what the transfer debited', () =>
      spec.given(afterDebit).when((state) => refundTransfer(state, leg(300))).then([refunded(300, 1000)]));

    it('refunds once per transfer: asked again, decides nothing', () =>
      spec.given([...afterDebit, refunded(300, 1000)]).when((state) => refundTransfer(state, leg(300))).then([]));

    it('refunds a closed account: the money left it for a transfer that did not happen', () =>
      spec
        .given([opened, deposited(300, 300), debited(300, 0), closed])
        .when((state) => refundTransfer(state, leg(300)))
        .then([refunded(300, 300)]));

    it('refuses to refund a transfer that did not debit the account', () =>
      spec
        .given([opened, deposited(1000, 1000), debited(300, 700, otherTransferId)])
        .when((state) => refundTransfer(state, leg(300)))
        .thenThrows(NothingToRefundError, (error) => {
          expect(error.code).toBe('ACCOUNT_NOTHING_TO_REFUND');
          expect(error.details).toEqual({ accountId, transferId });
        }));

    it('refuses to refund a transfer that only credited the account', () =>
      spec.given([opened, credited(300, 300)]).when((state) => refundTransfer(state, leg(300))).thenThrows(NothingToRefundError));

    it('refuses an unknown account', () =>
      spec.given([]).when((state) => refundTransfer(state, leg(300))).thenThrows(AccountNotFoundError));

    // BUG (src/accounts/account.ts, refundTransfer): unlike deposits and credits, a refund does not
    // check MAX_MINOR_UNITS, and it may not be refused either (the money already left). Debit 1000,
    // receive deposits up to 2^53 - 1, then the refund computes balanceAfter = 2^53 - 1 + 1000 in
    // floating point: 9007199254741992, one more than the true 9007199254741991 (money created), and
    // not a safe integer, which the read side's safeInteger transformer refuses to read.
    it.failing('never records a balance past 2^53 - 1, even for a refund', () => {
      const history = [opened, deposited(1000, 1000), debited(1000, 0), deposited(MAX_MINOR_UNITS, MAX_MINOR_UNITS)];
      let events: object[];
      try {
        events = refundTransfer(fold(accountDecider, history), leg(1000));
      } catch {
        events = []; // a refusal would at least keep the ledger consistent; the property is about what is recorded
      }
      for (const event of events) {
        const balanceAfter = (event as TransferRefunded).balanceAfter;
        expect(Number.isSafeInteger(balanceAfter) && balanceAfter <= MAX_MINOR_UNITS).toBe(true);
      }
    });
  });

  describe('evolve', () => {
    it('remembers every leg applied, by kind and transfer id, and the balance after the last', () => {
      const state = fold(accountDecider, [
        opened,
        deposited(1000, 1000),
        debited(300, 700),
        credited(50, 750, otherTransferId),
        refunded(300, 1050),
        new MoneyWithdrawn({ accountId, amount: 50, balanceAfter: 1000 }),
      ]);
      expect(state.status).toBe('open');
      if (state.status === 'none') return;
      expect(state.balance).toBe(1000);
      expect([...state.transferSteps].sort()).toEqual([`credit:${otherTransferId}`, `debit:${transferId}`, `refund:${transferId}`].sort());
    });

    it('folds every history into its own set of legs (two folds share nothing)', () => {
      const first = fold(accountDecider, [opened, deposited(1000, 1000), debited(300, 700)]);
      const second = fold(accountDecider, [opened, deposited(1000, 1000)]);
      if (first.status === 'none' || second.status === 'none') throw new Error('both accounts are open');
      expect(first.transferSteps.has(`debit:${transferId}`)).toBe(true);
      expect(second.transferSteps.size).toBe(0);
    });
  });
});
