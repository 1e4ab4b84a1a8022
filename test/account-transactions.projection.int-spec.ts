import { afterAll, beforeAll, describe, it } from '@jest/globals';
import { AccountTransactionsProjection } from '../src/accounts/account-transactions/account-transactions.projection.js';
import { accountStreamId } from '../src/accounts/account.js';
import {
  AccountClosed,
  AccountOpened,
  MoneyDeposited,
  MoneyWithdrawn,
  TransferCredited,
  TransferDebited,
  TransferRefunded,
  TransferSettled,
} from '../src/accounts/account.events.js';
import type { RecordedEvent } from '../src/event-sourcing/index.js';
import { projectionSpec } from '../src/event-sourcing/testing/projection-spec.js';
import { TestEventLog } from '../src/event-sourcing/testing/test-event-log.js';
import { type ProjectionDatabase, startProjectionDatabase } from './support/projection-database.js';

// account_transactions, given recorded events, on the real migrated table (as ledger_projector, read
// as ledger_query), in one batch and one event per batch, and applied twice.

const ada = '11111111-1111-4111-8111-111111111111';
const bob = '22222222-2222-4222-8222-222222222222';
const transferId = '33333333-3333-4333-8333-333333333333';

let db: ProjectionDatabase;
beforeAll(async () => {
  db = await startProjectionDatabase();
});
afterAll(() => db?.close());

const spec = projectionSpec(new AccountTransactionsProjection(), {
  dataSource: () => db.dataSource,
  rows: `SELECT position::text, account_id::text, type, amount::text, balance_after::text, occurred_at, transfer_id::text, reference
         FROM account_transactions ORDER BY position`,
});

/** The row a balance change should become; bigint columns read as text. */
const movement = (
  event: RecordedEvent<{ accountId: string; amount: number; balanceAfter: number }>,
  type: string,
  extra: { transfer?: string; reference?: string } = {},
) => ({
  position: String(event.position),
  account_id: event.data.accountId,
  type,
  amount: String(event.data.amount),
  balance_after: String(event.data.balanceAfter),
  occurred_at: new Date(event.metadata.occurredAt),
  transfer_id: extra.transfer ?? null,
  reference: extra.reference ?? null,
});

describe('account-transactions projection', () => {
  it('opening and closing an account, and settling a transfer, make no row', async () => {
    const log = new TestEventLog();
    const stream = accountStreamId(ada);
    const events = log.recordAll(stream, [
      new AccountOpened({ accountId: ada, ownerName: 'Ada', currency: 'EUR' }),
      new TransferSettled({ accountId: ada, transferId, amount: 1 }),
      new AccountClosed({ accountId: ada }),
    ]);
    await spec.given([]).when(events).then([]);
  });

  it('one row per deposit and withdrawal, keyed by its position, with the reference', async () => {
    const log = new TestEventLog();
    const stream = accountStreamId(ada);
    const opened = log.record(stream, new AccountOpened({ accountId: ada, ownerName: 'Ada', currency: 'EUR' }));
    const deposited = log.record(stream, new MoneyDeposited({ accountId: ada, amount: 100, balanceAfter: 100, reference: 'salary' }));
    const withdrawn = log.record(stream, new MoneyWithdrawn({ accountId: ada, amount: 30, balanceAfter: 70 }));
    await spec
      .given([opened, deposited])
      .when([withdrawn])
      .then([movement(deposited, 'deposit', { reference: 'salary' }), movement(withdrawn, 'withdrawal')]);
  });

  it('every transfer leg is a row with its transfer id, on the account it moved', async () => {
    const log = new TestEventLog();
    const history = [
      log.record(accountStreamId(ada), new AccountOpened({ accountId: ada, ownerName: 'Ada', currency: 'EUR' })),
      log.record(accountStreamId(bob), new AccountOpened({ accountId: bob, ownerName: 'Bob', currency: 'EUR' })),
      log.record(accountStreamId(ada), new MoneyDeposited({ accountId: ada, amount: 50, balanceAfter: 50 })),
    ];
    const debited = log.record(accountStreamId(ada), new TransferDebited({ accountId: ada, transferId, amount: 20, balanceAfter: 30 }));
    const credited = log.record(accountStreamId(bob), new TransferCredited({ accountId: bob, transferId, amount: 20, balanceAfter: 20 }));
    const refunded = log.record(accountStreamId(ada), new TransferRefunded({ accountId: ada, transferId, amount: 20, balanceAfter: 50 }));
    await spec
      .given(history)
      .when([debited, credited, refunded])
      .then([
        movement(history[2] as RecordedEvent<MoneyDeposited>, 'deposit'),
        movement(debited, 'transfer-out', { transfer: transferId }),
        movement(credited, 'transfer-in', { transfer: transferId }),
        movement(refunded, 'transfer-refund', { transfer: transferId }),
      ]);
  });

  it('is idempotent: events applied again add no row', async () => {
    const log = new TestEventLog();
    const stream = accountStreamId(ada);
    const history = log.recordAll(stream, [
      new AccountOpened({ accountId: ada, ownerName: 'Ada', currency: 'EUR' }),
      new MoneyDeposited({ accountId: ada, amount: 100, balanceAfter: 100 }),
    ]);
    const batch = log.recordAll(stream, [
      new MoneyWithdrawn({ accountId: ada, amount: 60, balanceAfter: 40 }),
      new TransferDebited({ accountId: ada, transferId, amount: 40, balanceAfter: 0 }),
    ]);
    await spec.given(history).when(batch).thenIdempotent();
  });
});
