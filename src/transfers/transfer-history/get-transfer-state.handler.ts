import { type IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { StateAt, type StateAtPoint } from '../../event-sourcing/index.js';
import { type TransferState, transferDecider, transferStreamId } from '../transfer.js';
import { GetTransferStateAt } from './get-transfer-state.query.js';

@QueryHandler(GetTransferStateAt)
export class GetTransferStateAtHandler implements IQueryHandler<GetTransferStateAt> {
  constructor(private readonly stateAt: StateAt) {}

  execute(query: GetTransferStateAt): Promise<StateAtPoint<TransferState> | null> {
    return this.stateAt.of(transferStreamId(query.transferId), transferDecider, query.point);
  }
}
