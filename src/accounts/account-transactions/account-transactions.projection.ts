import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { type Projection, ProjectionHandlers, type RecordedEvent } from '../../event-sourcing/index.js';
import { MoneyDeposited, MoneyWithdrawn } from '../account.events.js';
import { AccountTransactionRecord, type AccountTransactionType } from './account-transaction.record.js';

/**
 * Keeps `account_transactions` from the log, asynchronously. A row is keyed by its event's position,
 * so applying the same event twice inserts nothing the second time.
 */
@Injectable()
export class AccountTransactionsProjection implements Projection {
  readonly name = 'account-transactions';
  readonly mode = 'async';
  readonly tables = ['account_transactions'];
  readonly handlers = new ProjectionHandlers()
    .on(MoneyDeposited, (event, manager) => record(manager, event, 'deposit'))
    .on(MoneyWithdrawn, (event, manager) => record(manager, event, 'withdrawal'));
}

async function record(
  manager: EntityManager,
  event: RecordedEvent<MoneyDeposited | MoneyWithdrawn>,
  type: AccountTransactionType,
): Promise<void> {
  await manager
    .createQueryBuilder()
    .insert()
    .into(AccountTransactionRecord)
    .values({
      position: event.position,
      accountId: event.data.accountId,
      type,
      amount: event.data.amount,
      balanceAfter: event.data.balanceAfter,
      occurredAt: new Date(event.metadata.occurredAt),
      transferId: null,
    })
    .orIgnore()
    .execute();
}
