import { type IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import type { Repository } from 'typeorm';
import { EventLogReader } from '../../event-sourcing/index.js';
import { AccountNotFoundError } from '../account.errors.js';
import { accountStreamId } from '../account.js';
import { AccountTransactionRecord } from './account-transaction.record.js';
import { type AccountTransactionPage, ListAccountTransactions } from './list-account-transactions.query.js';
import { InjectQueryRepository } from '../../database/query-repository.js';

@QueryHandler(ListAccountTransactions)
export class ListAccountTransactionsHandler implements IQueryHandler<ListAccountTransactions> {
  constructor(
    @InjectQueryRepository(AccountTransactionRecord) private readonly transactions: Repository<AccountTransactionRecord>,
    private readonly store: EventLogReader,
  ) {}

  async execute({ accountId, limit, before }: ListAccountTransactions): Promise<AccountTransactionPage> {
    const query = this.transactions
      .createQueryBuilder('movement')
      .where('movement.accountId = :accountId', { accountId })
      .orderBy('movement.position', 'DESC')
      .limit(limit + 1);
    if (before !== undefined) query.andWhere('movement.position < :before', { before });
    const rows = await query.getMany();
    // An empty page is either an account without (more) movements or no account at all; the event
    // store (always current) tells which.
    if (rows.length === 0 && (await this.store.streamVersion(accountStreamId(accountId))) === 0) {
      throw new AccountNotFoundError(accountId);
    }
    const items = rows.slice(0, limit);
    return { items, nextBefore: rows.length > limit ? items[items.length - 1].position : null };
  }
}
