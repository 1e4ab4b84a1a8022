import { Query } from '@nestjs/cqrs';
import type { AccountTransactionRecord } from './account-transaction.record.js';

export interface AccountTransactionPage {
  readonly items: AccountTransactionRecord[];
  /** The position to continue before, or null on the last page. */
  readonly nextBefore: number | null;
}

/** An account's movements, newest first; keyset pagination on the event position. */
export class ListAccountTransactions extends Query<AccountTransactionPage> {
  constructor(
    readonly accountId: string,
    readonly limit: number,
    readonly before?: number,
  ) {
    super();
  }
}
