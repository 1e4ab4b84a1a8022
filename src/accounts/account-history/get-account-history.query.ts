import { Query } from '@nestjs/cqrs';
import type { RecordedEvent } from '../../event-sourcing/index.js';

export interface AccountEventPage {
  readonly items: RecordedEvent[];
  /** The version to continue after, or null on the last page. */
  readonly nextAfterVersion: number | null;
}

/**
 * A page of the account's stream, straight from the event store (the audit trail, not a read model):
 * the events after `afterVersion`, in version order; keyset pagination on the version.
 */
export class GetAccountHistory extends Query<AccountEventPage> {
  constructor(
    readonly accountId: string,
    readonly limit: number,
    readonly afterVersion: number,
  ) {
    super();
  }
}
