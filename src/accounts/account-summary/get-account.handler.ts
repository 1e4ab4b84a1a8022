import { type IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import type { Repository } from 'typeorm';
import { AccountSummaryRecord } from './account-summary.record.js';
import { GetAccount } from './get-account.query.js';
import { InjectQueryRepository } from '../../database/query-repository.js';

@QueryHandler(GetAccount)
export class GetAccountHandler implements IQueryHandler<GetAccount> {
  constructor(@InjectQueryRepository(AccountSummaryRecord) private readonly accounts: Repository<AccountSummaryRecord>) {}

  execute(query: GetAccount): Promise<AccountSummaryRecord | null> {
    return this.accounts.findOneBy({ id: query.accountId });
  }
}
