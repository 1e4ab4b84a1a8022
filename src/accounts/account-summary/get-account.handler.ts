import { type IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { AccountSummaryRecord } from './account-summary.record.js';
import { GetAccount } from './get-account.query.js';

@QueryHandler(GetAccount)
export class GetAccountHandler implements IQueryHandler<GetAccount> {
  constructor(@InjectRepository(AccountSummaryRecord) private readonly accounts: Repository<AccountSummaryRecord>) {}

  execute(query: GetAccount): Promise<AccountSummaryRecord | null> {
    return this.accounts.findOneBy({ id: query.accountId });
  }
}
