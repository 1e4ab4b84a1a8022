import { describe, expect, it } from '@jest/globals';
import { fold } from '../event-sourcing/decider.js';
import { deciderSpec } from '../event-sourcing/testing/decider-spec.js';
import {
  TransferAlreadyExistsError,
  type TransferState,
  recordCredit,
  recordCreditRefused,
  recordDebit,
  recordDebitRefused,
  recordRefund,
  requestTransfer,
  transferDecider,
  transferStreamId,
} from './transfer.js';
import {
  CreditRefused,
  SourceDebited,
  SourceRefunded,
  TargetCredited,
  TransferCompleted,
  type TransferEvent,
  TransferFailed,
  TransferRequested,
} from './transfer.events.js';

// The transfer decider, given(events) / when(step) / then(events | error). Every "record…" step is
// idempotent and only moves the transfer along requested → debited → completed, requested → failed,
// or debited → refunding → failed; asked at any other point it decides nothing.

const transferId = '0f6c2b8e-3c4d-4e5f-8a9b-1c2d3e4f5a6b';
const fromAccountId = '1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d';
const toAccountId = '6d5c4b3a-2f1e-4d0c-8b9a-6f5e4d3c2b1a';
const request = { transferId, fromAccountId, toAccountId, amount: 2500, currency: 'EUR', reference: 'Invoice 2026-117' };

const spec = deciderSpec(transferDecider);
const requested = new TransferRequested(request);
const sourceDebited = new SourceDebited({ transferId });
const targetCredited = new TargetCredited({ transferId });
const completed = new TransferCompleted({ transferId });
const closedTarget = { code: 'ACCOUNT_CLOSED', reason: `Account ${toAccountId} is closed` };
const noFunds = { code: 'ACCOUNT_INSUFFICIENT_FUNDS', reason: `Account ${fromAccountId} holds 10, less than the 2500 requested` };
const creditRefused = new CreditRefused({ transferId, ...closedTarget });
const sourceRefunded = new SourceRefunded({ transferId });
const failedRefunded = new TransferFailed({ transferId, ...closedTarget, refunded: true });
const failedNoFunds = new TransferFailed({ transferId, ...noFunds, refunded: false });

/** Every state a transfer can be in, as the events that lead there. */
const histories: Record<string, TransferEvent[]> = {
  none: [],
  pending: [requested],
  debited: [requested, sourceDebited],
  completed: [requested, sourceDebited, targetCredited, completed],
  'failed (debit refused)': [requested, failedNoFunds],
  refunding: [requested, sourceDebited, creditRefused],
  'failed (refunded)': [requested, sourceDebited, creditRefused, sourceRefunded, failedRefunded],
};

const steps = {
  recordDebit: (state: TransferState) => recordDebit(state),
  recordDebitRefused: (state: TransferState) => recordDebitRefused(state, noFunds),
  recordCredit: (state: TransferState) => recordCredit(state),
  recordCreditRefused: (state: TransferState) => recordCreditRefused(state, closedTarget),
  recordRefund: (state: TransferState) => recordRefund(state),
};

/** The only (state, step) pairs that decide something; everything else must decide nothing. */
const progress: Record<string, Partial<Record<keyof typeof steps, TransferEvent[]>>> = {
  pending: { recordDebit: [sourceDebited], recordDebitRefused: [failedNoFunds] },
  debited: { recordCredit: [targetCredited, completed], recordCreditRefused: [creditRefused] },
  refunding: { recordRefund: [sourceRefunded, failedRefunded] },
};

describe('transfer', () => {
  it('has a stream of its own per transfer id', () => {
    expect(transferStreamId(transferId)).toBe(`transfer-${transferId}`);
  });

  describe('request', () => {
    it('records the request with the source currency and the reference', () =>
      spec
        .given([])
        .when((state) => requestTransfer(state, request))
        .then([requested]));

    it('records a transfer without a reference', () =>
      spec
        .given([])
        .when((state) => requestTransfer(state, { ...request, reference: null }))
        .then([new TransferRequested({ ...request, reference: null })]));

    it.each(Object.entries(histories).filter(([name]) => name !== 'none'))('refuses a second request once %s', (_name, history) =>
      spec
        .given(history)
        .when((state) => requestTransfer(state, request))
        .thenThrows(TransferAlreadyExistsError, (error) => {
          expect(error.code).toBe('TRANSFER_ALREADY_EXISTS');
          expect(error.kind).toBe('conflict');
          expect(error.details).toEqual({ transferId });
        }),
    );
  });

  describe('debit of the source', () => {
    it('records the debit of a pending transfer', () => spec.given([requested]).when(recordDebit).then([sourceDebited]));

    it('fails a pending transfer whose debit was refused, with the code and reason, nothing refunded', () =>
      spec
        .given([requested])
        .when((state) => recordDebitRefused(state, noFunds))
        .then([failedNoFunds]));

    it('records a debit once: asked again after it, decides nothing', () =>
      spec.given([requested, sourceDebited]).when(recordDebit).then([]));

    it('does not fail a transfer whose source was already debited (a late refusal of a replayed step)', () =>
      spec
        .given([requested, sourceDebited])
        .when((state) => recordDebitRefused(state, noFunds))
        .then([]));
  });

  describe('credit of the target', () => {
    it('records the credit and completes a debited transfer in one decision', () =>
      spec.given([requested, sourceDebited]).when(recordCredit).then([targetCredited, completed]));

    it('never credits a transfer whose source was not debited', () => spec.given([requested]).when(recordCredit).then([]));

    it('records a refused credit (the source must now be refunded)', () =>
      spec
        .given([requested, sourceDebited])
        .when((state) => recordCreditRefused(state, closedTarget))
        .then([creditRefused]));

    it('does not take a refused credit for a pending transfer (nothing was debited)', () =>
      spec
        .given([requested])
        .when((state) => recordCreditRefused(state, closedTarget))
        .then([]));

    it('completes once: asked again after completion, decides nothing', () => spec.given(histories.completed).when(recordCredit).then([]));
  });

  describe('refund of the source', () => {
    it('records the refund and fails the transfer with the reason the credit was refused, refunded', () =>
      spec.given([requested, sourceDebited, creditRefused]).when(recordRefund).then([sourceRefunded, failedRefunded]));

    it('keeps the failure code of the refused credit, whatever it was', () => {
      const mismatch = { code: 'ACCOUNT_CURRENCY_MISMATCH', reason: 'Account holds USD, not EUR' };
      spec
        .given([requested, sourceDebited, new CreditRefused({ transferId, ...mismatch })])
        .when(recordRefund)
        .then([sourceRefunded, new TransferFailed({ transferId, ...mismatch, refunded: true })]);
    });

    it('refunds nothing that was not refused', () => spec.given([requested, sourceDebited]).when(recordRefund).then([]));

    it('refunds once: asked again after the refund, decides nothing', () =>
      spec.given(histories['failed (refunded)']).when(recordRefund).then([]));
  });

  describe('every step in every state', () => {
    const cases = Object.keys(histories).flatMap((state) => Object.keys(steps).map((step) => [state, step] as const));
    it.each(cases)('in state %s, %s decides only what the allowed path says', (state, step) => {
      const expected = progress[state]?.[step as keyof typeof steps] ?? [];
      spec
        .given(histories[state])
        .when(steps[step as keyof typeof steps])
        .then(expected);
    });

    it.each(Object.keys(histories))('in state %s, the state folded from the history has that status', (name) => {
      const state = fold(transferDecider, histories[name]);
      const status = name.replace(/ \(.*\)$/, '');
      expect(state.status).toBe(status);
    });
  });

  describe('evolve', () => {
    it('keeps what the request said through the whole process', () => {
      const state = fold(transferDecider, histories['failed (refunded)']);
      expect(state).toEqual({ status: 'failed', ...request, failure: closedTarget });
    });

    it('remembers why the credit was refused while refunding', () => {
      expect(fold(transferDecider, histories.refunding)).toEqual({ status: 'refunding', ...request, failure: closedTarget });
    });

    it('ignores events of a transfer that was never requested', () => {
      expect(fold(transferDecider, [sourceDebited, targetCredited, completed])).toEqual({ status: 'none' });
    });
  });
});
