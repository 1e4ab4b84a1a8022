import { Query } from '@nestjs/cqrs';
import type { TransferSummaryRecord } from './transfer-summary.record.js';

export class GetTransfer extends Query<TransferSummaryRecord | null> {
  constructor(readonly transferId: string) {
    super();
  }
}

export interface TransferPage {
  readonly items: TransferSummaryRecord[];
  readonly nextBefore: number | null;
}

/** Transfers from or to an account, newest first; keyset pagination on the request's position. */
export class ListAccountTransfers extends Query<TransferPage> {
  constructor(
    readonly accountId: string,
    readonly limit: number,
    readonly before?: number,
  ) {
    super();
  }
}
