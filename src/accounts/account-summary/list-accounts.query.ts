import { Query } from '@nestjs/cqrs';
import type { AccountStatus } from '../account.js';
import type { AccountSummaryRecord } from './account-summary.record.js';

export interface AccountPage {
  readonly items: AccountSummaryRecord[];
  /** The openedPosition to continue after, or null on the last page. */
  readonly nextAfter: number | null;
}

/** Newest accounts first; keyset pagination on opened_position (stable under concurrent inserts). */
export class ListAccounts extends Query<AccountPage> {
  constructor(
    readonly filter: { readonly owner?: string; readonly status?: AccountStatus },
    readonly limit: number,
    readonly after?: number,
  ) {
    super();
  }
}
