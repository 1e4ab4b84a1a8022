import { Inject } from '@nestjs/common';
import { type IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import { type PreparedStatement, QUERY_DATA_SOURCE, prepared } from '../../event-sourcing/index.js';
import { safeInteger } from '../../shared/safe-integer.transformer.js';
import type { AccountStatus } from '../account.js';
import { AccountSummaryRecord } from './account-summary.record.js';
import { GetAccount } from './get-account.query.js';

const SELECT_ACCOUNT: PreparedStatement = {
  name: 'ledger_get_account_v1',
  text: `SELECT id, owner_name, currency, balance, status, version, opened_at, updated_at, opened_position, last_position
         FROM account_summaries WHERE id = $1`,
};

interface AccountSummaryRow {
  id: string;
  owner_name: string;
  currency: string;
  balance: string;
  status: AccountStatus;
  version: number;
  opened_at: Date;
  updated_at: Date;
  opened_position: string;
  last_position: string;
}

/**
 * The hottest read of the API: one prepared statement instead of a TypeORM query build and entity
 * hydration per request (measured: docs/BENCHMARKS.md), on the query side's connection.
 */
@QueryHandler(GetAccount)
export class GetAccountHandler implements IQueryHandler<GetAccount> {
  constructor(@Inject(QUERY_DATA_SOURCE) private readonly dataSource: DataSource) {}

  async execute(query: GetAccount): Promise<AccountSummaryRecord | null> {
    const [row] = await prepared<AccountSummaryRow>(this.dataSource.manager, SELECT_ACCOUNT, [query.accountId]);
    if (!row) return null;
    return Object.assign(new AccountSummaryRecord(), {
      id: row.id,
      ownerName: row.owner_name,
      currency: row.currency,
      balance: safeInteger.from(row.balance) as number,
      status: row.status,
      version: row.version,
      openedAt: row.opened_at,
      updatedAt: row.updated_at,
      openedPosition: safeInteger.from(row.opened_position) as number,
      lastPosition: safeInteger.from(row.last_position) as number,
    });
  }
}
