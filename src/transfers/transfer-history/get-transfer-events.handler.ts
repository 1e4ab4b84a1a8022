import { Inject } from '@nestjs/common';
import { type IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import {
  EVENT_COLUMNS,
  EventLogReader,
  EventTypeRegistry,
  QUERY_DATA_SOURCE,
  type StoredEventRow,
  toRecordedEvent,
} from '../../event-sourcing/index.js';
import { transferStreamId } from '../transfer.js';
import { GetTransferEvents, type TransferEventPage } from './get-transfer-events.query.js';

/**
 * One page of the chain, through events_transfer_chain_idx ((data->>'transferId'), position): every
 * event of the process names the transfer (its own stream's and both accounts' legs), so the index
 * range holds this transfer's events only and a page reads at most limit+1 rows, whatever else
 * shares the correlation id (a caller reusing its X-Correlation-Id). The correlation filter keeps the
 * chain to the process's own work. Every step is appended after the previous one committed, so the
 * chain's positions grow with its steps and a keyset on the position misses none.
 */
const PAGE_SQL = `SELECT ${EVENT_COLUMNS} FROM events
  WHERE data ? 'transferId' AND data->>'transferId' = $1 AND position > $2 AND metadata->>'correlationId' = $3
  ORDER BY data->>'transferId', position
  LIMIT $4`;

@QueryHandler(GetTransferEvents)
export class GetTransferEventsHandler implements IQueryHandler<GetTransferEvents> {
  constructor(
    private readonly store: EventLogReader,
    @Inject(QUERY_DATA_SOURCE) private readonly dataSource: DataSource,
    private readonly registry: EventTypeRegistry,
  ) {}

  async execute({ transferId, limit, afterPosition }: GetTransferEvents): Promise<TransferEventPage | null> {
    const streamId = transferStreamId(transferId);
    const [requested] = await this.store.readStream(streamId, { toVersion: 1 });
    if (!requested) return null;
    const rows = (await this.dataSource.query(PAGE_SQL, [
      transferId,
      Math.max(afterPosition, requested.position - 1),
      requested.metadata.correlationId,
      limit + 1,
    ])) as StoredEventRow[];
    const items = rows.slice(0, limit).map((row) => toRecordedEvent(row, this.registry));
    return { items, nextAfterPosition: rows.length > limit ? items[items.length - 1].position : null };
  }
}
