import type { Decider } from '../event-sourcing/domain.js';
import { DomainError } from '../shared/domain-error.js';
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

// The transfer aggregate as pure functions. Each "record…" function is idempotent: asked again in
// a state where its step already happened, it decides nothing, which is what makes the process
// manager safe to replay.

export type TransferStatus = 'pending' | 'debited' | 'refunding' | 'completed' | 'failed';

export type TransferState =
  | { readonly status: 'none' }
  | {
      readonly status: TransferStatus;
      readonly transferId: string;
      readonly fromAccountId: string;
      readonly toAccountId: string;
      readonly amount: number;
      readonly currency: string;
      readonly reference: string | null;
      readonly failure: { readonly code: string; readonly reason: string } | null;
    };

export function transferStreamId(transferId: string): string {
  return `transfer-${transferId}`;
}

export class TransferAlreadyExistsError extends DomainError {
  readonly code = 'TRANSFER_ALREADY_EXISTS';
  readonly kind = 'conflict';
  constructor(transferId: string) {
    super(`Transfer ${transferId} already exists`, { transferId });
  }
}

export function evolve(state: TransferState, event: TransferEvent): TransferState {
  if (event instanceof TransferRequested) {
    return {
      status: 'pending',
      transferId: event.transferId,
      fromAccountId: event.fromAccountId,
      toAccountId: event.toAccountId,
      amount: event.amount,
      currency: event.currency,
      reference: event.reference,
      failure: null,
    };
  }
  if (state.status === 'none') return state;
  if (event instanceof SourceDebited) return { ...state, status: 'debited' };
  if (event instanceof TargetCredited) return state; // completed follows in the same append
  if (event instanceof TransferCompleted) return { ...state, status: 'completed' };
  if (event instanceof CreditRefused) return { ...state, status: 'refunding', failure: { code: event.code, reason: event.reason } };
  if (event instanceof SourceRefunded) return state; // failed follows in the same append
  if (event instanceof TransferFailed) return { ...state, status: 'failed', failure: { code: event.code, reason: event.reason } };
  return state;
}

export const transferDecider: Decider<TransferState, TransferEvent> = { initialState: { status: 'none' }, evolve };

export function requestTransfer(
  state: TransferState,
  command: { transferId: string; fromAccountId: string; toAccountId: string; amount: number; currency: string; reference: string | null },
): TransferEvent[] {
  if (state.status !== 'none') throw new TransferAlreadyExistsError(command.transferId);
  return [new TransferRequested({ ...command })];
}

export function recordDebit(state: TransferState): TransferEvent[] {
  return state.status === 'pending' ? [new SourceDebited({ transferId: state.transferId })] : [];
}

export function recordDebitRefused(state: TransferState, failure: { code: string; reason: string }): TransferEvent[] {
  return state.status === 'pending' ? [new TransferFailed({ transferId: state.transferId, ...failure, refunded: false })] : [];
}

export function recordCredit(state: TransferState): TransferEvent[] {
  return state.status === 'debited'
    ? [new TargetCredited({ transferId: state.transferId }), new TransferCompleted({ transferId: state.transferId })]
    : [];
}

export function recordCreditRefused(state: TransferState, failure: { code: string; reason: string }): TransferEvent[] {
  return state.status === 'debited' ? [new CreditRefused({ transferId: state.transferId, ...failure })] : [];
}

export function recordRefund(state: TransferState): TransferEvent[] {
  if (state.status !== 'refunding' || !state.failure) return [];
  return [
    new SourceRefunded({ transferId: state.transferId }),
    new TransferFailed({ transferId: state.transferId, ...state.failure, refunded: true }),
  ];
}
