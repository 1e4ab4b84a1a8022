import { type IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import type { Repository } from 'typeorm';
import { AccountSummaryRecord } from './account-summary.record.js';
import { type AccountPage, ListAccounts } from './list-accounts.query.js';
import { InjectQueryRepository } from '../../database/query-repository.js';

@QueryHandler(ListAccounts)
export class ListAccountsHandler implements IQueryHandler<ListAccounts> {
  constructor(@InjectQueryRepository(AccountSummaryRecord) private readonly accounts: Repository<AccountSummaryRecord>) {}

  async execute({ filter, limit, after }: ListAccounts): Promise<AccountPage> {
    const query = this.accounts
      .createQueryBuilder('account')
      .orderBy('account.openedPosition', 'DESC')
      .limit(limit + 1);
    if (filter.owner !== undefined) query.andWhere('account.ownerName = :owner', { owner: filter.owner });
    if (filter.status !== undefined) query.andWhere('account.status = :status', { status: filter.status });
    if (after !== undefined) query.andWhere('account.openedPosition < :after', { after });
    const rows = await query.getMany();
    const items = rows.slice(0, limit);
    return { items, nextAfter: rows.length > limit ? items[items.length - 1].openedPosition : null };
  }
}
