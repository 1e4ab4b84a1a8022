import { Query } from '@nestjs/cqrs';
import type { HistoryPoint, StateAtPoint } from '../../event-sourcing/index.js';
import type { TransferState } from '../transfer.js';

/** Time travel: the transfer as it was after a version or at an instant, folded from its own stream. */
export class GetTransferStateAt extends Query<StateAtPoint<TransferState> | null> {
  constructor(
    readonly transferId: string,
    readonly point: HistoryPoint,
  ) {
    super();
  }
}
