import { type IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { StateAt, type StateAtPoint } from '../../event-sourcing/index.js';
import { type AccountState, accountDecider, accountStreamId } from '../account.js';
import { GetAccountStateAt } from './get-account-state.query.js';

@QueryHandler(GetAccountStateAt)
export class GetAccountStateAtHandler implements IQueryHandler<GetAccountStateAt> {
  constructor(private readonly stateAt: StateAt) {}

  execute(query: GetAccountStateAt): Promise<StateAtPoint<AccountState> | null> {
    return this.stateAt.of(accountStreamId(query.accountId), accountDecider, query.point);
  }
}
