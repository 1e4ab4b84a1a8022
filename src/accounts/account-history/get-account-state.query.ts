import { Query } from '@nestjs/cqrs';
import type { HistoryPoint, StateAtPoint } from '../../event-sourcing/index.js';
import type { AccountState } from '../account.js';

/** Time travel: the account as it was after a version or at an instant, folded from its own events. */
export class GetAccountStateAt extends Query<StateAtPoint<AccountState> | null> {
  constructor(
    readonly accountId: string,
    readonly point: HistoryPoint,
  ) {
    super();
  }
}
