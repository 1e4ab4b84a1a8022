import { describe, expect, it } from '@jest/globals';
import { fold } from '../event-sourcing/decider.js';
import { deciderSpec } from '../event-sourcing/testing/decider-spec.js';
import { MAX_MINOR_UNITS } from '../shared/money.js';
import { DomainError } from '../shared/domain-error.js';
import {
  type AccountState,
  type TransferLeg,
  accountDecider,
  closeAccount,
  creditForTransfer,
  debitForTransfer,
  depositMoney,
  refundTransfer,
  settleTransfer,
} from './account.js';
import {
  AccountClosedError,
  AccountNotFoundError,
  BalanceLimitExceededError,
  BalanceNotZeroError,
  CurrencyMismatchError,
  InsufficientFundsError,
  InvalidAmountError,
  NothingToRefundError,
  NothingToSettleError,
  TransferInFlightError,
} from './account.errors.js';
import {
  AccountClosed,
  AccountOpened,
  MoneyDeposited,
  MoneyWithdrawn,
  TransferCredited,
  TransferDebited,
  TransferRefunded,
  TransferSettled,
} from './account.events.js';

// The account side of a transfer, given(events) / when(leg) / then(events | error): the debit of the
// source, the credit of the target, then either the settlement of the source (the money reached the
// target) or its refund (the credit was refused). Each leg is idempotent per transfer id (the account
// remembers the legs it applied), which is what lets the process manager retry or replay any step
// without moving money twice. Money debited and neither settled nor refunded is "in flight": it may
// still come back, so the account cannot be closed, and deposits and credits keep room for it.

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
const settled = (amount: number, id = transferId) => new TransferSettled({ accountId, transferId: id, amount });
const withdrawn = (amount: number, balanceAfter: number) => new MoneyWithdrawn({ accountId, amount, balanceAfter });
const leg = (amount: number, overrides: Partial<TransferLeg> = {}): TransferLeg => ({
  accountId,
  transferId,
  amount,
  currency: 'EUR',
  ...overrides,
});

describe('account transfer legs', () => {
  describe('debit of the source', () => {
    it('takes the amount and records the balance after it, with the transfer id', () =>
      spec
        .given([opened, deposited(1000, 1000)])
        .when((state) => debitForTransfer(state, leg(300)))
        .then([debited(300, 700)]));

    it('may take the whole balance', () =>
      spec
        .given([opened, deposited(1000, 1000)])
        .when((state) => debitForTransfer(state, leg(1000)))
        .then([debited(1000, 0)]));

    it('debits once per transfer: asked again, decides nothing', () =>
      spec
        .given([opened, deposited(1000, 1000), debited(300, 700)])
        .when((state) => debitForTransfer(state, leg(300)))
        .then([]));

    it('is idempotent per transfer id, whatever the repeated leg says', () =>
      spec
        .given([opened, deposited(1000, 1000), debited(300, 700)])
        .when((state) => debitForTransfer(state, leg(999, { currency: 'USD' })))
        .then([]));

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
      spec
        .given([opened, closed])
        .when((state) => debitForTransfer(state, leg(1)))
        .thenThrows(AccountClosedError));

    it('refuses an unknown account', () =>
      spec
        .given([])
        .when((state) => debitForTransfer(state, leg(1)))
        .thenThrows(AccountNotFoundError));

    it('refuses another currency than the account holds', () =>
      spec
        .given([opened, deposited(1000, 1000)])
        .when((state) => debitForTransfer(state, leg(10, { currency: 'USD' })))
        .thenThrows(CurrencyMismatchError, (error) => expect(error.code).toBe('ACCOUNT_CURRENCY_MISMATCH')));

    it.each([0, -1, 1.5, Number.NaN, MAX_MINOR_UNITS + 1])('refuses the amount %p', (amount) =>
      spec
        .given([opened, deposited(1000, 1000)])
        .when((state) => debitForTransfer(state, leg(amount)))
        .thenThrows(InvalidAmountError),
    );
  });

  describe('credit of the target', () => {
    it('adds the amount and records the balance after it, with the transfer id', () =>
      spec
        .given([opened, deposited(50, 50)])
        .when((state) => creditForTransfer(state, leg(300)))
        .then([credited(300, 350)]));

    it('credits once per transfer: asked again, decides nothing', () =>
      spec
        .given([opened, credited(300, 300)])
        .when((state) => creditForTransfer(state, leg(300)))
        .then([]));

    it('a credit of a transfer is not a debit of it: both legs may hit one account', () =>
      spec
        .given([opened, credited(300, 300)])
        .when((state) => debitForTransfer(state, leg(300)))
        .then([debited(300, 0)]));

    it('refuses a closed account (the transfer is then refunded)', () =>
      spec
        .given([opened, closed])
        .when((state) => creditForTransfer(state, leg(300)))
        .thenThrows(AccountClosedError));

    it('refuses an unknown account', () =>
      spec
        .given([])
        .when((state) => creditForTransfer(state, leg(300)))
        .thenThrows(AccountNotFoundError));

    it('refuses another currency than the account holds', () =>
      spec
        .given([opened])
        .when((state) => creditForTransfer(state, leg(300, { currency: 'USD' })))
        .thenThrows(CurrencyMismatchError));

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
      spec
        .given([opened])
        .when((state) => creditForTransfer(state, leg(amount)))
        .thenThrows(InvalidAmountError),
    );

    it('keeps room for the money in flight: refuses a credit that would leave no room for its refund', () =>
      // balance 2^53 - 1 - 110, and 100 in flight (they may come back): room for 10 more, not 11
      spec
        .given([opened, deposited(MAX_MINOR_UNITS - 10, MAX_MINOR_UNITS - 10), debited(100, MAX_MINOR_UNITS - 110)])
        .when((state) => creditForTransfer(state, leg(11, { transferId: otherTransferId })))
        .thenThrows(BalanceLimitExceededError, (error) => expect(error.code).toBe('ACCOUNT_BALANCE_LIMIT_EXCEEDED')));

    it('credits up to the room the money in flight leaves', () =>
      spec
        .given([opened, deposited(MAX_MINOR_UNITS - 10, MAX_MINOR_UNITS - 10), debited(100, MAX_MINOR_UNITS - 110)])
        .when((state) => creditForTransfer(state, leg(10, { transferId: otherTransferId })))
        .then([credited(10, MAX_MINOR_UNITS - 100, otherTransferId)]));

    it('has the room back once the money in flight is settled', () =>
      spec
        .given([opened, deposited(MAX_MINOR_UNITS - 10, MAX_MINOR_UNITS - 10), debited(100, MAX_MINOR_UNITS - 110), settled(100)])
        .when((state) => creditForTransfer(state, leg(110, { transferId: otherTransferId })))
        .then([credited(110, MAX_MINOR_UNITS, otherTransferId)]));
  });

  describe('refund of the source', () => {
    const afterDebit = [opened, deposited(1000, 1000), debited(300, 700)];

    it('gives back what the transfer debited', () =>
      spec
        .given(afterDebit)
        .when((state) => refundTransfer(state, leg(300)))
        .then([refunded(300, 1000)]));

    it('refunds once per transfer: asked again, decides nothing', () =>
      spec
        .given([...afterDebit, refunded(300, 1000)])
        .when((state) => refundTransfer(state, leg(300)))
        .then([]));

    // The source cannot have been closed meanwhile any more (closing waits for the money in flight, see
    // below); a stream written before that rule still gets its money back.
    it('still refunds a closed account of a stream written before closing waited for money in flight', () =>
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
      spec
        .given([opened, credited(300, 300)])
        .when((state) => refundTransfer(state, leg(300)))
        .thenThrows(NothingToRefundError));

    it('refuses an unknown account', () =>
      spec
        .given([])
        .when((state) => refundTransfer(state, leg(300)))
        .thenThrows(AccountNotFoundError));

    // Regression (src/accounts/account.ts): a refund may not be refused (the money already left), and
    // it used to be computable past 2^53 - 1: debit 1000, receive deposits up to 2^53 - 1, then the
    // refund recorded balanceAfter = 2^53 - 1 + 1000 in floating point (9007199254741992: one more
    // than the true sum, and not a safe integer). Now deposits and credits keep room for the money
    // in flight (balance + inFlight <= 2^53 - 1): the deposit that would make the refund overflow is
    // refused, and the refund lands at most at 2^53 - 1.
    describe('never records a balance past 2^53 - 1, even for a refund', () => {
      const inFlight = [opened, deposited(1000, 1000), debited(1000, 0)];

      it('refuses the deposit that would leave no room for the refund', () => {
        spec
          .given(inFlight)
          .when((state) => depositMoney(state, { accountId, amount: MAX_MINOR_UNITS }))
          .thenThrows(BalanceLimitExceededError, (error) => expect(error.code).toBe('ACCOUNT_BALANCE_LIMIT_EXCEEDED'));
        spec
          .given(inFlight)
          .when((state) => depositMoney(state, { accountId, amount: MAX_MINOR_UNITS - 999 }))
          .thenThrows(BalanceLimitExceededError);
      });

      it('refuses the credit that would leave no room for the refund', () =>
        spec
          .given(inFlight)
          .when((state) => creditForTransfer(state, leg(MAX_MINOR_UNITS - 999, { transferId: otherTransferId })))
          .thenThrows(BalanceLimitExceededError));

      it('the largest deposit allowed leaves exactly the room the refund needs: it lands at 2^53 - 1', () => {
        spec
          .given(inFlight)
          .when((state) => depositMoney(state, { accountId, amount: MAX_MINOR_UNITS - 1000 }))
          .then([deposited(MAX_MINOR_UNITS - 1000, MAX_MINOR_UNITS - 1000)]);
        const full = [...inFlight, deposited(MAX_MINOR_UNITS - 1000, MAX_MINOR_UNITS - 1000)];
        spec
          .given(full)
          .when((state) => refundTransfer(state, leg(1000)))
          .then([refunded(1000, MAX_MINOR_UNITS)]);
        const [refund] = refundTransfer(fold(accountDecider, full), leg(1000)) as TransferRefunded[];
        expect(Number.isSafeInteger(refund.balanceAfter) && refund.balanceAfter <= MAX_MINOR_UNITS).toBe(true);
        // and nothing more fits while the refund is pending
        spec
          .given(full)
          .when((state) => depositMoney(state, { accountId, amount: 1 }))
          .thenThrows(BalanceLimitExceededError);
      });

      it('once the refund came back, the account is full: nothing more fits', () =>
        spec
          .given([...inFlight, deposited(MAX_MINOR_UNITS - 1000, MAX_MINOR_UNITS - 1000), refunded(1000, MAX_MINOR_UNITS)])
          .when((state) => depositMoney(state, { accountId, amount: 1 }))
          .thenThrows(BalanceLimitExceededError));
    });

    // Regression: a transfer's debit is resolved by a settlement (credit made) or by a refund (credit
    // refused), never both; refundTransfer used to ignore a settlement, creating money.
    it('never refunds a transfer it settled (its money reached the target)', () => {
      const history = [opened, deposited(1000, 1000), debited(300, 700), settled(300)];
      expect(resolvedAgain(() => refundTransfer(fold(accountDecider, history), leg(300)))).toEqual([]);
    });
  });

  describe('settlement of the source', () => {
    const afterDebit = [opened, deposited(1000, 1000), debited(300, 700)];

    it('records that the transfer reached its target, with the amount, changing no balance', () =>
      spec
        .given(afterDebit)
        .when((state) => settleTransfer(state, leg(300)))
        .then([settled(300)]));

    it('settles once per transfer: asked again, decides nothing', () =>
      spec
        .given([...afterDebit, settled(300)])
        .when((state) => settleTransfer(state, leg(300)))
        .then([]));

    it('settles each transfer of the account on its own', () =>
      spec
        .given([...afterDebit, debited(200, 500, otherTransferId), settled(300)])
        .when((state) => settleTransfer(state, leg(200, { transferId: otherTransferId })))
        .then([settled(200, otherTransferId)]));

    it('refuses to settle a transfer that did not debit the account', () =>
      spec
        .given([opened, deposited(1000, 1000), debited(300, 700, otherTransferId)])
        .when((state) => settleTransfer(state, leg(300)))
        .thenThrows(NothingToSettleError, (error) => {
          expect(error.code).toBe('ACCOUNT_NOTHING_TO_SETTLE');
          expect(error.details).toEqual({ accountId, transferId });
        }));

    it('refuses to settle a transfer that only credited the account', () =>
      spec
        .given([opened, credited(300, 300)])
        .when((state) => settleTransfer(state, leg(300)))
        .thenThrows(NothingToSettleError));

    it('refuses an unknown account', () =>
      spec
        .given([])
        .when((state) => settleTransfer(state, leg(300)))
        .thenThrows(AccountNotFoundError));

    // Regression: the converse — a refunded transfer used to be settled again, taking its amount off
    // inFlight a second time.
    it('never settles a transfer it refunded (its money came back)', () => {
      const history = [opened, deposited(1000, 1000), debited(300, 700), refunded(300, 1000)];
      expect(resolvedAgain(() => settleTransfer(fold(accountDecider, history), leg(300)))).toEqual([]);
    });
  });

  describe('money in flight (debited, neither settled nor refunded)', () => {
    const inFlightOf = (history: object[]) => {
      const state = fold(accountDecider, history as never[]) as AccountState;
      if (state.status === 'none') throw new Error('the account was opened');
      return state.inFlight;
    };

    it('keeps the account from closing, though its balance is zero: 422 ACCOUNT_TRANSFER_IN_FLIGHT', () =>
      spec
        .given([opened, deposited(300, 300), debited(300, 0)])
        .when((state) => closeAccount(state, { accountId }))
        .thenThrows(TransferInFlightError, (error) => {
          expect(error.code).toBe('ACCOUNT_TRANSFER_IN_FLIGHT');
          expect(error.kind).toBe('rule-violated');
          expect(error.details).toEqual({ accountId, inFlight: 300 });
        }));

    it('a balance left is still refused as such first', () =>
      spec
        .given([opened, deposited(500, 500), debited(300, 200)])
        .when((state) => closeAccount(state, { accountId }))
        .thenThrows(BalanceNotZeroError));

    it('once settled, the account closes', () =>
      spec
        .given([opened, deposited(300, 300), debited(300, 0), settled(300)])
        .when((state) => closeAccount(state, { accountId }))
        .then([closed]));

    it('once refunded and paid out, the account closes', () =>
      spec
        .given([opened, deposited(300, 300), debited(300, 0), refunded(300, 300), withdrawn(300, 0)])
        .when((state) => closeAccount(state, { accountId }))
        .then([closed]));

    it('waits for every transfer in flight, not only the last', () =>
      spec
        .given([opened, deposited(500, 500), debited(300, 200), debited(200, 0, otherTransferId), settled(200, otherTransferId)])
        .when((state) => closeAccount(state, { accountId }))
        .thenThrows(TransferInFlightError, (error) => expect(error.details).toEqual({ accountId, inFlight: 300 })));

    it('a credit is never in flight (only what left the account may come back)', () =>
      spec
        .given([opened, credited(300, 300), withdrawn(300, 0)])
        .when((state) => closeAccount(state, { accountId }))
        .then([closed]));

    it('is the sum of the debits neither settled nor refunded', () => {
      expect(inFlightOf([opened])).toBe(0);
      expect(inFlightOf([opened, deposited(1000, 1000), debited(300, 700)])).toBe(300);
      expect(inFlightOf([opened, deposited(1000, 1000), debited(300, 700), debited(200, 500, otherTransferId)])).toBe(500);
      expect(inFlightOf([opened, deposited(1000, 1000), debited(300, 700), debited(200, 500, otherTransferId), settled(300)])).toBe(200);
      expect(
        inFlightOf([
          opened,
          deposited(1000, 1000),
          debited(300, 700),
          debited(200, 500, otherTransferId),
          settled(300),
          refunded(200, 700, otherTransferId),
        ]),
      ).toBe(0);
      expect(inFlightOf([opened, credited(300, 300), deposited(10, 310), withdrawn(10, 300)])).toBe(0);
    });

    it('deposits keep room for it: refused past 2^53 - 1 - balance - inFlight, accepted up to it', () => {
      const history = [opened, deposited(1000, 1000), debited(400, 600)];
      spec
        .given(history)
        .when((state) => depositMoney(state, { accountId, amount: MAX_MINOR_UNITS - 999 }))
        .thenThrows(BalanceLimitExceededError);
      spec
        .given(history)
        .when((state) => depositMoney(state, { accountId, amount: MAX_MINOR_UNITS - 1000 }))
        .then([deposited(MAX_MINOR_UNITS - 1000, MAX_MINOR_UNITS - 400)]);
      // settled, the 400 will never come back: the room is the balance's alone again
      spec
        .given([...history, settled(400)])
        .when((state) => depositMoney(state, { accountId, amount: MAX_MINOR_UNITS - 600 }))
        .then([deposited(MAX_MINOR_UNITS - 600, MAX_MINOR_UNITS)]);
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
      expect(state.inFlight).toBe(0);
      expect([...state.transferSteps].sort()).toEqual([`credit:${otherTransferId}`, `debit:${transferId}`, `refund:${transferId}`].sort());
    });

    it('remembers a settlement as a leg and takes it off the money in flight, the balance unchanged', () => {
      const state = fold(accountDecider, [
        opened,
        deposited(1000, 1000),
        debited(300, 700),
        debited(100, 600, otherTransferId),
        settled(300),
      ]);
      if (state.status === 'none') throw new Error('the account is open');
      expect({ balance: state.balance, inFlight: state.inFlight, status: state.status }).toEqual({
        balance: 600,
        inFlight: 100,
        status: 'open',
      });
      expect([...state.transferSteps].sort()).toEqual([`debit:${otherTransferId}`, `debit:${transferId}`, `settle:${transferId}`].sort());
    });

    it('a snapshot of the state, encoded and decoded, is the same state (schema version 3: inFlight, openDebits)', () => {
      const { snapshots } = accountDecider;
      if (!snapshots) throw new Error('accounts are snapshotted');
      expect(snapshots.schemaVersion).toBe(3);
      const state = fold(accountDecider, [
        opened,
        deposited(1000, 1000),
        debited(300, 700),
        debited(100, 600, otherTransferId),
        settled(300),
      ]);
      const decoded = snapshots.decode(JSON.parse(JSON.stringify(snapshots.encode(state))));
      if (decoded.status === 'none' || state.status === 'none') throw new Error('the account is open');
      const { transferSteps, ...rest } = state;
      const { transferSteps: decodedSteps, ...decodedRest } = decoded;
      expect(decodedRest).toEqual(rest);
      expect(decodedRest.inFlight).toBe(100);
      expect([...decodedRest.openDebits]).toEqual([[otherTransferId, 100]]);
      expect([...decodedSteps].sort()).toEqual([...transferSteps].sort());
    });

    it('folds every history into its own set of legs (two folds share nothing)', () => {
      const first = fold(accountDecider, [opened, deposited(1000, 1000), debited(300, 700)]);
      const second = fold(accountDecider, [opened, deposited(1000, 1000)]);
      if (first.status === 'none' || second.status === 'none') throw new Error('both accounts are open');
      expect(first.transferSteps.has(`debit:${transferId}`)).toBe(true);
      expect(second.transferSteps.size).toBe(0);
    });
  });

  it('a copy of a state (what a unit of work folds) shares nothing a fold changes with the original', () => {
    const original = fold(accountDecider, [opened, deposited(100, 100), debited(30, 70)]);
    const copy = accountDecider.copy!(original);
    expect(copy).toEqual(original);
    const folded = [debited(20, 50, otherTransferId), settled(30)].reduce((state, event) => accountDecider.evolve(state, event), copy);
    expect(folded).toMatchObject({ balance: 50, inFlight: 20 });
    // The original is still the state after its three events: no step or open debit of the fold above.
    expect(original).toEqual(fold(accountDecider, [opened, deposited(100, 100), debited(30, 70)]));
  });
});

/** What a second resolution of a transfer decides: a refusal (a domain error) counts as nothing decided. */
function resolvedAgain(decide: () => object[]): object[] {
  try {
    return decide();
  } catch (error) {
    if (error instanceof DomainError) return [];
    throw error;
  }
}
