import { type IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { EventLogReader, type RecordedEvent } from '../../event-sourcing/index.js';
import { accountStreamId } from '../account.js';
import { GetAccountHistory } from './get-account-history.query.js';

@QueryHandler(GetAccountHistory)
export class GetAccountHistoryHandler implements IQueryHandler<GetAccountHistory> {
  constructor(private readonly store: EventLogReader) {}

  execute(query: GetAccountHistory): Promise<RecordedEvent[]> {
    return this.store.readStream(accountStreamId(query.accountId));
  }
}
