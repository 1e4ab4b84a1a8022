import { Query } from '@nestjs/cqrs';
import type { RecordedEvent } from '../../event-sourcing/index.js';

export interface TransferEventPage {
  readonly items: RecordedEvent[];
  /** The log position to continue after, or null on the last page. */
  readonly nextAfterPosition: number | null;
}

/**
 * A page of the transfer's chain: the events of its correlation that are its own or its accounts'
 * legs, in log order, after `afterPosition`; null when there is no such transfer.
 */
export class GetTransferEvents extends Query<TransferEventPage | null> {
  constructor(
    readonly transferId: string,
    readonly limit: number,
    readonly afterPosition: number,
  ) {
    super();
  }
}
