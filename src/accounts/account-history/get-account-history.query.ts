import { Query } from '@nestjs/cqrs';
import type { RecordedEvent } from '../../event-sourcing/index.js';

/** The account's full stream, straight from the event store: the audit trail, not a read model. */
export class GetAccountHistory extends Query<RecordedEvent[]> {
  constructor(readonly accountId: string) {
    super();
  }
}
