import { Query } from '@nestjs/cqrs';
import type { AccountSummaryRecord } from './account-summary.record.js';

export class GetAccount extends Query<AccountSummaryRecord | null> {
  constructor(readonly accountId: string) {
    super();
  }
}
