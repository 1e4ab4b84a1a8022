import { type IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import type { Repository } from 'typeorm';
import { AccountNotFoundError, accountStreamId } from '../../accounts/index.js';
import { EventLogReader } from '../../event-sourcing/index.js';
import { TransferSummaryRecord } from './transfer-summary.record.js';
import { GetTransfer, ListAccountTransfers, type TransferPage } from './transfer.queries.js';
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
  constructor(
    @InjectQueryRepository(TransferSummaryRecord) private readonly transfers: Repository<TransferSummaryRecord>,
    private readonly store: EventLogReader,
  ) {}

  async execute({ accountId, limit, before }: ListAccountTransfers): Promise<TransferPage> {
    const query = this.transfers
      .createQueryBuilder('transfer')
      .where('(transfer.fromAccountId = :accountId OR transfer.toAccountId = :accountId)', { accountId })
      .orderBy('transfer.requestedPosition', 'DESC')
      .limit(limit + 1);
    if (before !== undefined) query.andWhere('transfer.requestedPosition < :before', { before });
    const rows = await query.getMany();
    // An empty page is either an account without (more) transfers or no account at all; the event
    // store (always current) tells which, as for the account's transactions.
    if (rows.length === 0 && (await this.store.streamVersion(accountStreamId(accountId))) === 0) {
      throw new AccountNotFoundError(accountId);
    }
    const items = rows.slice(0, limit);
    return { items, nextBefore: rows.length > limit ? items[items.length - 1].requestedPosition : null };
  }
}
