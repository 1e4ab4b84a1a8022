import { type IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import type { Repository } from 'typeorm';
import { EventLogReader, type RecordedEvent } from '../../event-sourcing/index.js';
import { transferStreamId } from '../transfer.js';
import { TransferSummaryRecord } from './transfer-summary.record.js';
import { GetTransfer, GetTransferChain, ListAccountTransfers, type TransferPage } from './transfer.queries.js';
import { InjectQueryRepository } from '../../database/query-repository.js';

@QueryHandler(GetTransfer)
export class GetTransferHandler implements IQueryHandler<GetTransfer> {
  constructor(@InjectQueryRepository(TransferSummaryRecord) private readonly transfers: Repository<TransferSummaryRecord>) {}

  execute(query: GetTransfer): Promise<TransferSummaryRecord | null> {
    return this.transfers.findOneBy({ id: query.transferId });
  }
}

@QueryHandler(ListAccountTransfers)
export class ListAccountTransfersHandler implements IQueryHandler<ListAccountTransfers> {
  constructor(@InjectQueryRepository(TransferSummaryRecord) private readonly transfers: Repository<TransferSummaryRecord>) {}

  async execute({ accountId, limit, before }: ListAccountTransfers): Promise<TransferPage> {
    const query = this.transfers
      .createQueryBuilder('transfer')
      .where('(transfer.fromAccountId = :accountId OR transfer.toAccountId = :accountId)', { accountId })
      .orderBy('transfer.requestedPosition', 'DESC')
      .limit(limit + 1);
    if (before !== undefined) query.andWhere('transfer.requestedPosition < :before', { before });
    const rows = await query.getMany();
    const items = rows.slice(0, limit);
    return { items, nextBefore: rows.length > limit ? items[items.length - 1].requestedPosition : null };
  }
}

@QueryHandler(GetTransferChain)
export class GetTransferChainHandler implements IQueryHandler<GetTransferChain> {
  constructor(private readonly store: EventLogReader) {}

  async execute({ transferId }: GetTransferChain): Promise<RecordedEvent[]> {
    const [requested] = await this.store.readStream(transferStreamId(transferId), { toVersion: 1 });
    if (!requested) return [];
    return this.store.readProcessChain({
      correlationId: requested.metadata.correlationId,
      fromPosition: requested.position,
      streamId: requested.streamId,
      idField: 'transferId',
      id: transferId,
    });
  }
}
