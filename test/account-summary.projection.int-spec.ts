import { afterAll, beforeAll, describe, it } from '@jest/globals';
import { AccountSummaryProjection } from '../src/accounts/account-summary/account-summary.projection.js';
import { accountStreamId } from '../src/accounts/account.js';
import {
  AccountClosed,
  AccountOpened,
  MoneyDeposited,
  MoneyWithdrawn,
  TransferDebited,
  TransferSettled,
} from '../src/accounts/account.events.js';
import { projectionSpec } from '../src/event-sourcing/testing/projection-spec.js';
import { TestEventLog } from '../src/event-sourcing/testing/test-event-log.js';
import { type ProjectionDatabase, startProjectionDatabase } from './support/projection-database.js';

// account_summaries, given recorded events, on the real migrated tables (as ledger_projector, read as
// ledger_query), in one batch and one event per batch, and applied twice.

const ada = '11111111-1111-4111-8111-111111111111';
const bob = '22222222-2222-4222-8222-222222222222';
const transferId = '33333333-3333-4333-8333-333333333333';

let db: ProjectionDatabase;
beforeAll(async () => {
  db = await startProjectionDatabase();
});
afterAll(() => db?.close());

const spec = projectionSpec(new AccountSummaryProjection(), {
  dataSource: () => db.dataSource,
  rows: `SELECT id::text, owner_name, currency, balance::text, status, version,
                opened_at, updated_at, opened_position::text, last_position::text
         FROM account_summaries ORDER BY id`,
});

/** A row as the query above reads it; positions and balances are bigint, hence text. */
const summary = (row: {
  id: string;
  owner: string;
  balance: number;
  status?: 'open' | 'closed';
  version: number;
  openedAt: string;
  updatedAt: string;
  openedPosition: number;
  lastPosition: number;
}) => ({
  id: row.id,
  owner_name: row.owner,
  currency: 'EUR',
  balance: String(row.balance),
  status: row.status ?? 'open',
  version: row.version,
  opened_at: new Date(row.openedAt),
  updated_at: new Date(row.updatedAt),
  opened_position: String(row.openedPosition),
  last_position: String(row.lastPosition),
});

describe('account-summary projection', () => {
  it('an opened account is a row with balance 0, at version 1', async () => {
    const log = new TestEventLog();
    const opened = log.record(accountStreamId(ada), new AccountOpened({ accountId: ada, ownerName: 'Ada', currency: 'EUR' }));
    await spec
      .given([])
      .when([opened])
      .then([
        summary({
          id: ada,
          owner: 'Ada',
          balance: 0,
          version: 1,
          openedAt: opened.metadata.occurredAt,
          updatedAt: opened.metadata.occurredAt,
          openedPosition: 1,
          lastPosition: 1,
        }),
      ]);
  });

  it('deposits and withdrawals set the balance after the last one, the version and the update time', async () => {
    const log = new TestEventLog();
    const stream = accountStreamId(ada);
    const [opened] = log.recordAll(stream, [new AccountOpened({ accountId: ada, ownerName: 'Ada', currency: 'EUR' })]);
    const movements = log.recordAll(stream, [
      new MoneyDeposited({ accountId: ada, amount: 100, balanceAfter: 100 }),
      new MoneyWithdrawn({ accountId: ada, amount: 30, balanceAfter: 70 }),
      new MoneyDeposited({ accountId: ada, amount: 5, balanceAfter: 75, reference: 'tip' }),
    ]);
    await spec
      .given([opened])
      .when(movements)
      .then([
        summary({
          id: ada,
          owner: 'Ada',
          balance: 75,
          version: 4,
          openedAt: opened.metadata.occurredAt,
          updatedAt: movements[2].metadata.occurredAt,
          openedPosition: 1,
          lastPosition: 4,
        }),
      ]);
  });

  it('a settled transfer moves the version but not the balance; closing marks the account closed', async () => {
    const log = new TestEventLog();
    const stream = accountStreamId(ada);
    const history = log.recordAll(stream, [
      new AccountOpened({ accountId: ada, ownerName: 'Ada', currency: 'EUR' }),
      new MoneyDeposited({ accountId: ada, amount: 40, balanceAfter: 40 }),
      new TransferDebited({ accountId: ada, transferId, amount: 40, balanceAfter: 0 }),
    ]);
    const settled = log.record(stream, new TransferSettled({ accountId: ada, transferId, amount: 40 }));
    const closed = log.record(stream, new AccountClosed({ accountId: ada }));
    const row = { id: ada, owner: 'Ada', balance: 0, openedAt: history[0].metadata.occurredAt, openedPosition: 1 };
    await spec
      .given(history)
      .when([settled])
      .then([summary({ ...row, version: 4, updatedAt: settled.metadata.occurredAt, lastPosition: 4 })]);
    await spec
      .given(history)
      .when([settled, closed])
      .then([summary({ ...row, status: 'closed', version: 5, updatedAt: closed.metadata.occurredAt, lastPosition: 5 })]);
  });

  it('keeps two accounts apart when their events interleave in the log', async () => {
    const log = new TestEventLog();
    const events = [
      log.record(accountStreamId(ada), new AccountOpened({ accountId: ada, ownerName: 'Ada', currency: 'EUR' })),
      log.record(accountStreamId(bob), new AccountOpened({ accountId: bob, ownerName: 'Bob', currency: 'EUR' })),
      log.record(accountStreamId(bob), new MoneyDeposited({ accountId: bob, amount: 7, balanceAfter: 7 })),
      log.record(accountStreamId(ada), new MoneyDeposited({ accountId: ada, amount: 9, balanceAfter: 9 })),
    ];
    const at = (index: number) => events[index].metadata.occurredAt;
    await spec
      .given(events.slice(0, 2))
      .when(events.slice(2))
      .then([
        summary({ id: ada, owner: 'Ada', balance: 9, version: 2, openedAt: at(0), updatedAt: at(3), openedPosition: 1, lastPosition: 4 }),
        summary({ id: bob, owner: 'Bob', balance: 7, version: 2, openedAt: at(1), updatedAt: at(2), openedPosition: 2, lastPosition: 3 }),
      ]);
  });

  it('an older version applied after a newer one changes nothing (the version guard)', async () => {
    const log = new TestEventLog();
    const stream = accountStreamId(ada);
    const opened = log.record(stream, new AccountOpened({ accountId: ada, ownerName: 'Ada', currency: 'EUR' }));
    const first = log.record(stream, new MoneyDeposited({ accountId: ada, amount: 10, balanceAfter: 10 }));
    const second = log.record(stream, new MoneyDeposited({ accountId: ada, amount: 5, balanceAfter: 15 }));
    await spec
      .given([opened, second])
      .when([first])
      .then([
        summary({
          id: ada,
          owner: 'Ada',
          balance: 15,
          version: 3,
          openedAt: opened.metadata.occurredAt,
          updatedAt: second.metadata.occurredAt,
          openedPosition: 1,
          lastPosition: 3,
        }),
      ]);
  });

  it('is idempotent: events applied again change no row', async () => {
    const log = new TestEventLog();
    const stream = accountStreamId(ada);
    const history = log.recordAll(stream, [
      new AccountOpened({ accountId: ada, ownerName: 'Ada', currency: 'EUR' }),
      new MoneyDeposited({ accountId: ada, amount: 100, balanceAfter: 100 }),
    ]);
    const batch = [
      log.record(stream, new MoneyWithdrawn({ accountId: ada, amount: 100, balanceAfter: 0 })),
      log.record(accountStreamId(bob), new AccountOpened({ accountId: bob, ownerName: 'Bob', currency: 'EUR' })),
      log.record(stream, new AccountClosed({ accountId: ada })),
    ];
    await spec.given(history).when(batch).thenIdempotent();
  });
});
