import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { type PreparedStatement, type Projection, type RecordedEvent, prepared } from '../../event-sourcing/index.js';
import {
  type BalanceChange,
  MoneyDeposited,
  MoneyWithdrawn,
  TransferCredited,
  TransferDebited,
  TransferRefunded,
  isBalanceChange,
} from '../account.events.js';
import type { AccountTransactionType } from './account-transaction.record.js';

const TYPE_OF = new Map<Function, AccountTransactionType>([
  [MoneyDeposited, 'deposit'],
  [MoneyWithdrawn, 'withdrawal'],
  [TransferDebited, 'transfer-out'],
  [TransferCredited, 'transfer-in'],
  [TransferRefunded, 'transfer-refund'],
]);

/** Prepared (sql.ts): planning these ran longer than executing them, on every batch (docs/BENCHMARKS.md). */
const INSERT_MOVEMENTS_SQL: PreparedStatement = {
  name: 'ledger_account_transactions_insert_v1',
  text: `INSERT INTO account_transactions (position, account_id, type, amount, balance_after, occurred_at, transfer_id, reference)
       SELECT position, account_id, type, amount, balance_after, occurred_at, transfer_id, reference
       FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::bigint[], $5::bigint[], $6::timestamptz[], $7::uuid[], $8::text[])
         AS movement(position, account_id, type, amount, balance_after, occurred_at, transfer_id, reference)
       ON CONFLICT (position) DO NOTHING`,
};

/**
 * Keeps `account_transactions` from the log, asynchronously: one row per deposit, withdrawal or
 * transfer leg (with its transfer id),
 * keyed by its event's position, so applying an event twice inserts nothing the second time. A batch
 * is one multi-row INSERT.
 */
@Injectable()
export class AccountTransactionsProjection implements Projection {
  readonly name = 'account-transactions';
  readonly mode = 'async';
  readonly tables = ['account_transactions'];
  readonly handles = [MoneyDeposited, MoneyWithdrawn, TransferDebited, TransferCredited, TransferRefunded];

  async applyBatch(events: readonly RecordedEvent[], manager: EntityManager): Promise<void> {
    const movements = events.filter((event): event is RecordedEvent<BalanceChange> => isBalanceChange(event.data));
    if (movements.length === 0) return;
    await prepared(manager, INSERT_MOVEMENTS_SQL, [
      movements.map((event) => event.position),
      movements.map((event) => event.data.accountId),
      movements.map((event) => TYPE_OF.get(event.data.constructor)),
      movements.map((event) => event.data.amount),
      movements.map((event) => event.data.balanceAfter),
      movements.map((event) => event.metadata.occurredAt),
      movements.map((event) => ('transferId' in event.data ? event.data.transferId : null)),
      movements.map((event) => ('reference' in event.data ? event.data.reference : null)),
    ]);
  }
}
