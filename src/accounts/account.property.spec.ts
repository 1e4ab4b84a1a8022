import { deepStrictEqual as same, ok, throws } from 'node:assert/strict';
import { describe, it } from '@jest/globals';
import fc from 'fast-check';
import { fold } from '../event-sourcing/decider.js';
import { DomainError } from '../shared/domain-error.js';
import { MAX_MINOR_UNITS } from '../shared/money.js';
import {
  type AccountState,
  accountDecider,
  closeAccount,
  creditForTransfer,
  debitForTransfer,
  depositMoney,
  evolve,
  openAccount,
  refundTransfer,
  settleTransfer,
  withdrawMoney,
} from './account.js';
import {
  type AccountEvent,
  AccountClosed,
  MoneyDeposited,
  MoneyWithdrawn,
  TransferCredited,
  TransferDebited,
  TransferRefunded,
  TransferSettled,
  isBalanceChange,
} from './account.events.js';

// Property-based tests of the account rules (fast-check): random sequences of every account command,
// transfer legs included (debit, credit, and the two ways a debit is resolved: settlement or refund),
// are run through the pure decide functions, and each answer is compared with a small independent
// model of the rules. Most runs use amounts far below 2^53; the "near the limit" runs draw amounts up
// to 2^53 - 1, where the room kept for the money in flight decides deposits and credits (the limit
// also has example-based tests in account.spec.ts and account-transfer-legs.spec.ts).

const accountId = '5b0e8c1e-7a4f-4b8e-9d55-3a3f5c2f4d10';
const TRANSFER_IDS = [
  '00000000-0000-4000-8000-000000000001',
  '00000000-0000-4000-8000-000000000002',
  '00000000-0000-4000-8000-000000000003',
  '00000000-0000-4000-8000-000000000004',
];
const RUNS = 300;

type Command =
  | { kind: 'deposit'; amount: number }
  | { kind: 'withdraw'; amount: number }
  | { kind: 'close' }
  | { kind: 'debit'; transfer: number; amount: number; currency: string }
  | { kind: 'credit'; transfer: number; amount: number; currency: string }
  | { kind: 'refund'; transfer: number }
  | { kind: 'settle'; transfer: number }
  // the whole balance, whatever it is (what empties an account: before closing it, or by a transfer)
  | { kind: 'withdrawAll' }
  | { kind: 'debitAll'; transfer: number };

/** Mostly valid amounts, sometimes an invalid one (zero, negative, fractional). */
const amount = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 1, max: 5_000 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, -1, -500, 0.5, 12.25) },
);
const transfer = fc.integer({ min: 0, max: TRANSFER_IDS.length - 1 });
/** The account holds EUR; a leg in another currency must be refused. */
const currency = fc.constantFrom('EUR', 'EUR', 'EUR', 'EUR', 'USD');

/** Amounts anywhere up to 2^53 - 1, often close to it: the balance limit comes into play. */
const hugeAmount = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 5_000 }) },
  { weight: 3, arbitrary: fc.integer({ min: MAX_MINOR_UNITS - 20_000, max: MAX_MINOR_UNITS }) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: MAX_MINOR_UNITS }) },
);

function commandOf(value: fc.Arbitrary<number>): fc.Arbitrary<Command> {
  return fc.oneof(
    { weight: 4, arbitrary: value.map((amount) => ({ kind: 'deposit', amount }) as const) },
    { weight: 3, arbitrary: value.map((amount) => ({ kind: 'withdraw', amount }) as const) },
    { weight: 2, arbitrary: fc.constant({ kind: 'close' } as const) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('debit' as const), transfer, amount: value, currency }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('credit' as const), transfer, amount: value, currency }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('refund' as const), transfer }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('settle' as const), transfer }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'withdrawAll' } as const) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('debitAll' as const), transfer }) },
  );
}
const command = commandOf(amount);
const commands = fc.array(command, { minLength: 1, maxLength: 60 });
/** The same commands with amounts up to 2^53 - 1. */
const nearTheLimit = fc.array(commandOf(hugeAmount), { minLength: 1, maxLength: 60 });

/** The rules, restated independently of account.ts: what each command must do. */
interface Model {
  balance: number;
  closed: boolean;
  /** Amount each transfer debited (a refund gives back exactly that, a settlement names exactly that). */
  debited: Map<string, number>;
  credited: Set<string>;
  refunded: Set<string>;
  settled: Set<string>;
  /** Debited, neither settled nor refunded: what may still come back. */
  inFlight: number;
}

/** A settlement changes no balance: its expected balanceAfter is undefined. */
type Expected = { ok: true; event?: { type: Function; amount: number; balanceAfter?: number } } | { ok: false; code: string };

const valid = (value: number) => Number.isSafeInteger(value) && value > 0;

function expectedOutcome(model: Model, cmd: ConcreteCommand): Expected {
  const refuse = (code: string): Expected => ({ ok: false, code });
  const change = (type: Function, value: number, balanceAfter?: number): Expected => ({
    ok: true,
    event: { type, amount: value, balanceAfter },
  });
  /** Deposits and credits keep room for the money in flight, so that its refund always fits. */
  const noRoomFor = (value: number) => value > MAX_MINOR_UNITS - model.balance - model.inFlight;
  switch (cmd.kind) {
    case 'deposit':
      if (model.closed) return refuse('ACCOUNT_CLOSED');
      if (!valid(cmd.amount)) return refuse('ACCOUNT_INVALID_AMOUNT');
      if (noRoomFor(cmd.amount)) return refuse('ACCOUNT_BALANCE_LIMIT_EXCEEDED');
      return change(MoneyDeposited, cmd.amount, model.balance + cmd.amount);
    case 'withdraw':
      if (model.closed) return refuse('ACCOUNT_CLOSED');
      if (!valid(cmd.amount)) return refuse('ACCOUNT_INVALID_AMOUNT');
      if (cmd.amount > model.balance) return refuse('ACCOUNT_INSUFFICIENT_FUNDS');
      return change(MoneyWithdrawn, cmd.amount, model.balance - cmd.amount);
    case 'close':
      if (model.closed) return refuse('ACCOUNT_CLOSED');
      if (model.balance !== 0) return refuse('ACCOUNT_BALANCE_NOT_ZERO');
      if (model.inFlight !== 0) return refuse('ACCOUNT_TRANSFER_IN_FLIGHT');
      return { ok: true };
    case 'debit': {
      const id = TRANSFER_IDS[cmd.transfer];
      if (model.debited.has(id)) return { ok: true }; // idempotent: nothing new
      if (model.closed) return refuse('ACCOUNT_CLOSED');
      if (!valid(cmd.amount)) return refuse('ACCOUNT_INVALID_AMOUNT');
      if (cmd.currency !== 'EUR') return refuse('ACCOUNT_CURRENCY_MISMATCH');
      if (cmd.amount > model.balance) return refuse('ACCOUNT_INSUFFICIENT_FUNDS');
      return change(TransferDebited, cmd.amount, model.balance - cmd.amount);
    }
    case 'credit': {
      const id = TRANSFER_IDS[cmd.transfer];
      if (model.credited.has(id)) return { ok: true };
      if (model.closed) return refuse('ACCOUNT_CLOSED');
      if (!valid(cmd.amount)) return refuse('ACCOUNT_INVALID_AMOUNT');
      if (cmd.currency !== 'EUR') return refuse('ACCOUNT_CURRENCY_MISMATCH');
      if (noRoomFor(cmd.amount)) return refuse('ACCOUNT_BALANCE_LIMIT_EXCEEDED');
      return change(TransferCredited, cmd.amount, model.balance + cmd.amount);
    }
    case 'refund': {
      const id = TRANSFER_IDS[cmd.transfer];
      if (model.refunded.has(id)) return { ok: true };
      const debit = model.debited.get(id);
      if (debit === undefined) return refuse('ACCOUNT_NOTHING_TO_REFUND');
      return change(TransferRefunded, debit, model.balance + debit); // never refused: there is room for it
    }
    case 'settle': {
      const id = TRANSFER_IDS[cmd.transfer];
      if (model.settled.has(id)) return { ok: true };
      const debit = model.debited.get(id);
      if (debit === undefined) return refuse('ACCOUNT_NOTHING_TO_SETTLE');
      return change(TransferSettled, debit);
    }
  }
}

type ConcreteCommand = Exclude<Command, { kind: 'withdrawAll' } | { kind: 'debitAll' }>;

/** "All" is the balance the account holds at that moment (0, an invalid amount, when it holds nothing). */
function concrete(model: Model, cmd: Command): ConcreteCommand {
  if (cmd.kind === 'withdrawAll') return { kind: 'withdraw', amount: model.balance };
  if (cmd.kind === 'debitAll') return { kind: 'debit', transfer: cmd.transfer, amount: model.balance, currency: 'EUR' };
  return cmd;
}

/**
 * Whether the process manager could ask for this command: it settles a transfer once its credit was
 * made and refunds it once its credit was refused, never both. The account's answer to the other
 * order is a known bug (see "never refunds a transfer it settled" in account-transfer-legs.spec.ts),
 * so the runs leave it out.
 */
function askable(model: Model, cmd: Command): boolean {
  if (cmd.kind === 'refund') return !model.settled.has(TRANSFER_IDS[cmd.transfer]);
  if (cmd.kind === 'settle') return !model.refunded.has(TRANSFER_IDS[cmd.transfer]);
  return true;
}

function applyToModel(model: Model, events: readonly AccountEvent[]): void {
  for (const event of events) {
    if (event instanceof AccountClosed) model.closed = true;
    if (isBalanceChange(event)) model.balance = event.balanceAfter;
    if (event instanceof TransferDebited) model.debited.set(event.transferId, event.amount);
    if (event instanceof TransferCredited) model.credited.add(event.transferId);
    if (event instanceof TransferRefunded) model.refunded.add(event.transferId);
    if (event instanceof TransferSettled) model.settled.add(event.transferId);
    if (event instanceof TransferDebited) model.inFlight += event.amount;
    if (event instanceof TransferRefunded || event instanceof TransferSettled) model.inFlight -= event.amount;
  }
}

const newModel = (): Model => ({
  balance: 0,
  closed: false,
  debited: new Map(),
  credited: new Set(),
  refunded: new Set(),
  settled: new Set(),
  inFlight: 0,
});

/** What the process manager would send: a refund or a settlement repeats the amount its transfer debited. */
function decide(state: AccountState, model: Model, cmd: ConcreteCommand): AccountEvent[] {
  switch (cmd.kind) {
    case 'deposit':
      return depositMoney(state, { accountId, amount: cmd.amount });
    case 'withdraw':
      return withdrawMoney(state, { accountId, amount: cmd.amount });
    case 'close':
      return closeAccount(state, { accountId });
    case 'debit':
      return debitForTransfer(state, { accountId, transferId: TRANSFER_IDS[cmd.transfer], amount: cmd.amount, currency: cmd.currency });
    case 'credit':
      return creditForTransfer(state, { accountId, transferId: TRANSFER_IDS[cmd.transfer], amount: cmd.amount, currency: cmd.currency });
    case 'refund': {
      const id = TRANSFER_IDS[cmd.transfer];
      return refundTransfer(state, { accountId, transferId: id, amount: model.debited.get(id) ?? 1, currency: 'EUR' });
    }
    case 'settle': {
      const id = TRANSFER_IDS[cmd.transfer];
      return settleTransfer(state, { accountId, transferId: id, amount: model.debited.get(id) ?? 1, currency: 'EUR' });
    }
  }
}

interface Run {
  readonly history: AccountEvent[];
  /** The state evolved one decision at a time (what a long-lived aggregate would hold). */
  readonly state: AccountState;
  readonly model: Model;
}

/** Runs the commands on a freshly opened EUR account, checking every answer against the model. */
function run(cmds: readonly Command[]): Run {
  const history: AccountEvent[] = [...openAccount(accountDecider.initialState, { accountId, ownerName: 'Ada', currency: 'EUR' })];
  let state = fold(accountDecider, history);
  const model = newModel();
  for (const asked of cmds) {
    const cmd = concrete(model, asked);
    if (!askable(model, cmd)) continue;
    const expected = expectedOutcome(model, cmd);
    let events: AccountEvent[];
    try {
      events = decide(state, model, cmd);
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      same({ cmd, code: error.code }, { cmd, code: expected.ok ? '(none: accepted)' : expected.code });
      continue;
    }
    same({ cmd, accepted: expected.ok }, { cmd, accepted: true });
    if (expected.ok && expected.event) {
      same(events.length, 1);
      const [event] = events as Array<AccountEvent & { amount: number; balanceAfter: number; accountId: string }>;
      same(
        { cmd, type: event.constructor.name, amount: event.amount, balanceAfter: event.balanceAfter },
        {
          cmd,
          type: expected.event.type.name,
          amount: expected.event.amount,
          balanceAfter: expected.event.balanceAfter,
        },
      );
      same(event.accountId, accountId);
      if (event instanceof TransferSettled) same(Object.keys(event).sort(), ['accountId', 'amount', 'transferId']); // no balance
    } else if (cmd.kind === 'close') {
      same(events, [new AccountClosed({ accountId })]);
    } else {
      same({ cmd, events }, { cmd, events: [] }); // a repeated transfer leg decides nothing
    }
    history.push(...events);
    state = events.reduce(evolve, state);
    applyToModel(model, events);
    if (state.status === 'none') throw new Error('the account was opened');
    same({ cmd, balance: state.balance, inFlight: state.inFlight }, { cmd, balance: model.balance, inFlight: model.inFlight });
  }
  return { history, state, model };
}

const sumOf = (events: readonly AccountEvent[], type: Function) =>
  events.filter((event) => event instanceof type).reduce((sum, event) => sum + (event as MoneyDeposited).amount, 0);

describe('account rules (property-based)', () => {
  it('every command is decided as the rules say: accepted with the right event, or refused with the right code', () => {
    fc.assert(
      fc.property(commands, (cmds) => void run(cmds)),
      { numRuns: RUNS },
    );
  });

  it('near the limit too: deposits and credits are refused exactly when they would leave no room for the money in flight', () => {
    fc.assert(
      fc.property(nearTheLimit, (cmds) => void run(cmds)),
      { numRuns: RUNS },
    );
  });

  it('no balance ever passes 2^53 - 1, and balance + money in flight never does either: every refund fits', () => {
    fc.assert(
      fc.property(nearTheLimit, (cmds) => {
        const { history, state, model } = run(cmds);
        if (state.status === 'none') throw new Error('the account was opened');
        for (const event of history.filter(isBalanceChange)) {
          ok(Number.isSafeInteger(event.balanceAfter) && event.balanceAfter <= MAX_MINOR_UNITS, `balanceAfter ${event.balanceAfter}`);
        }
        ok(state.balance + state.inFlight <= MAX_MINOR_UNITS, `balance ${state.balance} + in flight ${state.inFlight}`);
        // whatever is still in flight comes back, transfer by transfer, without ever passing the limit
        let refunding: AccountState = state;
        for (const [id, debit] of model.debited) {
          if (model.settled.has(id) || model.refunded.has(id)) continue;
          const events = refundTransfer(refunding, { accountId, transferId: id, amount: debit, currency: 'EUR' });
          same(events.length, 1);
          const { balanceAfter } = events[0] as TransferRefunded;
          ok(Number.isSafeInteger(balanceAfter) && balanceAfter <= MAX_MINOR_UNITS, `refund to ${balanceAfter}`);
          refunding = events.reduce(evolve, refunding);
        }
        if (refunding.status === 'none') throw new Error('the account was opened');
        same(refunding.inFlight, 0);
        same(refunding.balance, state.balance + state.inFlight);
      }),
      { numRuns: RUNS },
    );
  });

  it('the money in flight is the debits neither settled nor refunded, never negative', () => {
    fc.assert(
      fc.property(fc.oneof(commands, nearTheLimit), (cmds) => {
        const { history, state } = run(cmds);
        if (state.status === 'none') throw new Error('the account was opened');
        const resolved = new Set(
          history
            .filter((event) => event instanceof TransferSettled || event instanceof TransferRefunded)
            .map((event) => (event as TransferSettled).transferId),
        );
        const open = history
          .filter((event): event is TransferDebited => event instanceof TransferDebited && !resolved.has(event.transferId))
          .reduce((sum, event) => sum + event.amount, 0);
        same(state.inFlight, open);
        ok(state.inFlight >= 0);
        // and a closed account never has any: it was closed with nothing in flight
        if (state.status === 'closed') same(state.inFlight, 0);
      }),
      { numRuns: RUNS },
    );
  });

  it('the balance is never negative, and every balanceAfter follows from the previous balance and the amount', () => {
    fc.assert(
      fc.property(commands, (cmds) => {
        const { history } = run(cmds);
        let balance = 0;
        for (const event of history.filter(isBalanceChange)) {
          const sign = event instanceof MoneyWithdrawn || event instanceof TransferDebited ? -1 : 1;
          balance += sign * event.amount;
          ok(event.amount > 0);
          same(event.balanceAfter, balance);
          ok(event.balanceAfter >= 0, `negative balance ${event.balanceAfter}`);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('the balance equals deposits and incoming legs minus withdrawals and outgoing legs', () => {
    fc.assert(
      fc.property(commands, (cmds) => {
        const { history, state } = run(cmds);
        if (state.status === 'none') throw new Error('the account was opened');
        const incoming = sumOf(history, MoneyDeposited) + sumOf(history, TransferCredited) + sumOf(history, TransferRefunded);
        const outgoing = sumOf(history, MoneyWithdrawn) + sumOf(history, TransferDebited);
        same(state.balance, incoming - outgoing);
      }),
      { numRuns: RUNS },
    );
  });

  it('replaying the events reproduces the state the decisions were made on', () => {
    fc.assert(
      fc.property(commands, (cmds) => {
        const { history, state } = run(cmds);
        const replayed = fold(accountDecider, history);
        if (state.status === 'none' || replayed.status === 'none') throw new Error('the account was opened');
        const { transferSteps: steps, ...rest } = state;
        const { transferSteps: replayedSteps, ...replayedRest } = replayed;
        same(replayedRest, rest);
        same([...replayedSteps].sort(), [...steps].sort());
        // and a second replay of the same events gives the same again (folds share nothing)
        const again = fold(accountDecider, history);
        if (again.status === 'none') throw new Error('the account was opened');
        same([...again.transferSteps].sort(), [...steps].sort());
      }),
      { numRuns: RUNS },
    );
  });

  it('each transfer leg is applied at most once per transfer id, however often it is asked for', () => {
    fc.assert(
      fc.property(commands, (cmds) => {
        const { history } = run(cmds);
        for (const type of [TransferDebited, TransferCredited, TransferRefunded, TransferSettled]) {
          const ids = history.filter((event) => event instanceof type).map((event) => (event as TransferDebited).transferId);
          same(new Set(ids).size, ids.length);
        }
        // a refund only ever follows a debit of the same transfer, for the same amount
        for (const refund of history.filter((event): event is TransferRefunded => event instanceof TransferRefunded)) {
          const index = history.indexOf(refund);
          const debit = history.slice(0, index).find((event) => event instanceof TransferDebited && event.transferId === refund.transferId);
          ok(debit !== undefined, `refund of ${refund.transferId} without a debit`);
          same(refund.amount, (debit as TransferDebited).amount);
        }
        // a settlement too, and a debit is resolved once: settled or refunded, never both
        for (const settlement of history.filter((event): event is TransferSettled => event instanceof TransferSettled)) {
          const index = history.indexOf(settlement);
          const debit = history
            .slice(0, index)
            .find((event) => event instanceof TransferDebited && event.transferId === settlement.transferId);
          ok(debit !== undefined, `settlement of ${settlement.transferId} without a debit`);
          same(settlement.amount, (debit as TransferDebited).amount);
          ok(
            !history.some((event) => event instanceof TransferRefunded && event.transferId === settlement.transferId),
            'settled and refunded',
          );
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('a repeated leg is a no-op right after it was applied (a process manager retrying a step)', () => {
    fc.assert(
      fc.property(commands, (cmds) => {
        const { state, model } = run(cmds);
        for (const id of TRANSFER_IDS) {
          const leg = { accountId, transferId: id, amount: model.debited.get(id) ?? 1, currency: 'EUR' };
          if (model.debited.has(id)) same(debitForTransfer(state, leg), []);
          if (model.credited.has(id)) same(creditForTransfer(state, leg), []);
          if (model.refunded.has(id)) same(refundTransfer(state, leg), []);
          if (model.settled.has(id)) same(settleTransfer(state, leg), []);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('an account with money in flight cannot be closed, whatever its balance; settled and paid out, it can', () => {
    fc.assert(
      fc.property(commands, (cmds) => {
        const { state, model } = run(cmds);
        if (state.status !== 'open' || model.inFlight === 0) return;
        let emptied: AccountState = state;
        if (model.balance > 0) emptied = withdrawMoney(emptied, { accountId, amount: model.balance }).reduce(evolve, emptied);
        throws(
          () => closeAccount(emptied, { accountId }),
          (error: unknown) => (error as DomainError).code === 'ACCOUNT_TRANSFER_IN_FLIGHT',
        );
        for (const [id, debit] of model.debited) {
          if (model.settled.has(id) || model.refunded.has(id)) continue;
          emptied = settleTransfer(emptied, { accountId, transferId: id, amount: debit, currency: 'EUR' }).reduce(evolve, emptied);
        }
        same(closeAccount(emptied, { accountId }), [new AccountClosed({ accountId })]);
      }),
      { numRuns: RUNS },
    );
  });

  it('a closed account refuses everything but the resolution of its transfers and repeats of legs it already applied', () => {
    fc.assert(
      fc.property(commands, fc.array(command, { maxLength: 20 }), (before, after) => {
        const { state, model } = run(before);
        if (state.status === 'none') throw new Error('the account was opened');
        // unless it is closed already: settle what is in flight (the credits were made), bring the
        // balance to zero and close it; then try anything
        let closedState: AccountState = state;
        if (closedState.status === 'open') {
          for (const [id, debit] of model.debited) {
            if (model.settled.has(id) || model.refunded.has(id)) continue;
            const events = settleTransfer(closedState, { accountId, transferId: id, amount: debit, currency: 'EUR' });
            closedState = events.reduce(evolve, closedState);
            applyToModel(model, events);
          }
        }
        if (closedState.status === 'open' && model.balance > 0) {
          closedState = withdrawMoney(closedState, { accountId, amount: model.balance }).reduce(evolve, closedState);
        }
        if (closedState.status === 'open') closedState = closeAccount(closedState, { accountId }).reduce(evolve, closedState);
        if (closedState.status !== 'closed') throw new Error(`the account is ${closedState.status}, not closed`);
        const closedAccount = closedState;
        for (const asked of after) {
          const cmd = concrete(model, asked);
          const id = 'transfer' in cmd ? TRANSFER_IDS[cmd.transfer] : '';
          const repeat =
            (cmd.kind === 'debit' && closedAccount.transferSteps.has(`debit:${id}`)) ||
            (cmd.kind === 'credit' && closedAccount.transferSteps.has(`credit:${id}`));
          if (cmd.kind === 'refund' || cmd.kind === 'settle' || repeat) continue;
          let code: string | undefined;
          try {
            decide(closedAccount, model, cmd);
          } catch (error) {
            code = (error as DomainError).code;
          }
          same({ cmd, code }, { cmd, code: 'ACCOUNT_CLOSED' });
        }
      }),
      { numRuns: RUNS },
    );
  });
});
