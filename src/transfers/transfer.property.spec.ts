import { deepStrictEqual as same, ok, throws } from 'node:assert/strict';
import { describe, it } from '@jest/globals';
import fc from 'fast-check';
import { fold } from '../event-sourcing/decider.js';
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
} from './transfer.js';
import { CreditRefused, SourceRefunded, type TransferEvent, TransferFailed } from './transfer.events.js';

// Property-based tests of the transfer rules (fast-check): any sequence of process steps, in any
// order and repeated any number of times (a process manager retried, replayed from an older
// checkpoint, or restarted after a crash between two steps), only ever moves a transfer along one of
// the three allowed paths, and every step is idempotent.

const transferId = '0f6c2b8e-3c4d-4e5f-8a9b-1c2d3e4f5a6b';
const request = {
  transferId,
  fromAccountId: '1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d',
  toAccountId: '6d5c4b3a-2f1e-4d0c-8b9a-6f5e4d3c2b1a',
  amount: 2500,
  currency: 'EUR',
  reference: null,
};
const RUNS = 500;

type Step =
  | { kind: 'request' }
  | { kind: 'debit' }
  | { kind: 'debitRefused'; code: string }
  | { kind: 'credit' }
  | { kind: 'creditRefused'; code: string }
  | { kind: 'refund' };

const code = fc.constantFrom('ACCOUNT_INSUFFICIENT_FUNDS', 'ACCOUNT_CLOSED', 'ACCOUNT_CURRENCY_MISMATCH', 'ACCOUNT_BALANCE_LIMIT_EXCEEDED');
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.constant({ kind: 'request' } as const),
  fc.constant({ kind: 'debit' } as const),
  code.map((value) => ({ kind: 'debitRefused', code: value }) as const),
  fc.constant({ kind: 'credit' } as const),
  code.map((value) => ({ kind: 'creditRefused', code: value }) as const),
  fc.constant({ kind: 'refund' } as const),
);
/** Usually starting with the request, as the process does; sometimes not (steps before any request). */
const steps = fc
  .tuple(fc.boolean(), fc.array(step, { maxLength: 25 }))
  .map(([requestFirst, rest]) => (requestFirst ? [{ kind: 'request' } as Step, ...rest] : rest));

function decide(state: TransferState, s: Step): TransferEvent[] {
  switch (s.kind) {
    case 'request':
      return requestTransfer(state, request);
    case 'debit':
      return recordDebit(state);
    case 'debitRefused':
      return recordDebitRefused(state, { code: s.code, reason: `refused: ${s.code}` });
    case 'credit':
      return recordCredit(state);
    case 'creditRefused':
      return recordCreditRefused(state, { code: s.code, reason: `refused: ${s.code}` });
    case 'refund':
      return recordRefund(state);
  }
}

/** The three paths a transfer's stream may take, as event type names. */
const PATHS = [
  ['TransferRequested', 'SourceDebited', 'TargetCredited', 'TransferCompleted'],
  ['TransferRequested', 'TransferFailed'],
  ['TransferRequested', 'SourceDebited', 'CreditRefused', 'SourceRefunded', 'TransferFailed'],
];

/** Status changes a single decision may make. */
const ALLOWED_MOVES = new Set([
  'none→pending',
  'pending→debited',
  'pending→failed',
  'debited→completed',
  'debited→refunding',
  'refunding→failed',
]);

interface Trace {
  readonly history: TransferEvent[];
  readonly moves: string[];
}

/**
 * Runs the steps, each decided on the state folded afresh from the whole history (a replay), and
 * checks after each that asking for the same step again decides nothing.
 */
function run(sequence: readonly Step[]): Trace {
  const history: TransferEvent[] = [];
  const moves: string[] = [];
  for (const s of sequence) {
    const before = fold(transferDecider, history);
    let events: TransferEvent[];
    try {
      events = decide(before, s);
    } catch (error) {
      ok(error instanceof TransferAlreadyExistsError);
      same({ step: s.kind, status: before.status === 'none' ? 'none' : 'exists' }, { step: 'request', status: 'exists' });
      continue;
    }
    history.push(...events);
    const after = fold(transferDecider, history);
    if (events.length > 0) moves.push(`${before.status}→${after.status}`);
    else same(after, before);
    // idempotent: the same step, asked again on the new state, decides nothing (or, for a request, is refused)
    if (s.kind === 'request') throws(() => decide(after, s), TransferAlreadyExistsError);
    else same({ step: s.kind, again: decide(after, s) }, { step: s.kind, again: [] });
  }
  return { history, moves };
}

const typesOf = (history: readonly TransferEvent[]) => history.map((event) => event.constructor.name);

describe('transfer rules (property-based)', () => {
  it('every step is idempotent: asked again right after, it decides nothing', () => {
    fc.assert(
      fc.property(steps, (sequence) => void run(sequence)),
      { numRuns: RUNS },
    );
  });

  it('the stream is always a prefix of one of the three allowed paths', () => {
    fc.assert(
      fc.property(steps, (sequence) => {
        const types = typesOf(run(sequence).history);
        const fits = PATHS.some((path) => types.every((type, index) => path[index] === type));
        same({ types, fits }, { types, fits: true });
      }),
      { numRuns: RUNS },
    );
  });

  it('each decision moves the status along an allowed edge only, and never out of completed or failed', () => {
    fc.assert(
      fc.property(steps, (sequence) => {
        for (const move of run(sequence).moves) same({ move, allowed: ALLOWED_MOVES.has(move) }, { move, allowed: true });
      }),
      { numRuns: RUNS },
    );
  });

  it('a failure says refunded exactly when the source was refunded, with the code of the refused credit', () => {
    fc.assert(
      fc.property(steps, (sequence) => {
        const { history } = run(sequence);
        const failed = history.filter((event): event is TransferFailed => event instanceof TransferFailed);
        ok(failed.length <= 1);
        if (failed.length === 0) return;
        const refund = history.find((event) => event instanceof SourceRefunded);
        const creditRefused = history.find((event): event is CreditRefused => event instanceof CreditRefused);
        same(failed[0].refunded, refund !== undefined);
        if (creditRefused)
          same({ code: failed[0].code, reason: failed[0].reason }, { code: creditRefused.code, reason: creditRefused.reason });
      }),
      { numRuns: RUNS },
    );
  });

  it('a step that took effect decides nothing ever again (replayed from an older checkpoint, or after a crash)', () => {
    fc.assert(
      fc.property(steps, (sequence) => {
        const history: TransferEvent[] = [];
        const done: Step[] = [];
        for (const s of sequence) {
          let events: TransferEvent[] = [];
          try {
            events = decide(fold(transferDecider, history), s);
          } catch (error) {
            ok(error instanceof TransferAlreadyExistsError);
          }
          history.push(...events);
          if (events.length > 0) done.push(s);
          const state = fold(transferDecider, history);
          for (const earlier of done) {
            if (earlier.kind === 'request') throws(() => decide(state, earlier), TransferAlreadyExistsError);
            else same({ step: earlier.kind, again: decide(state, earlier) }, { step: earlier.kind, again: [] });
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('with every step offered, a requested transfer always reaches completed or failed', () => {
    fc.assert(
      fc.property(
        fc.array(step, { maxLength: 10 }),
        fc.constantFrom('debit', 'debitRefused'),
        fc.constantFrom('credit', 'creditRefused'),
        (noise, first, second) => {
          // whatever happened before, offering the remaining steps in process order finishes the transfer
          const finish: Step[] = [
            first === 'debit' ? { kind: 'debit' } : { kind: 'debitRefused', code: 'ACCOUNT_INSUFFICIENT_FUNDS' },
            second === 'credit' ? { kind: 'credit' } : { kind: 'creditRefused', code: 'ACCOUNT_CLOSED' },
            { kind: 'refund' },
          ];
          const { history } = run([{ kind: 'request' }, ...noise, ...finish]);
          const state = fold(transferDecider, history);
          ok(state.status === 'completed' || state.status === 'failed', state.status);
        },
      ),
      { numRuns: RUNS },
    );
  });
});
