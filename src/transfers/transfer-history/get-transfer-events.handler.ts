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
 * One page of the chain, through events_correlation_idx ((metadata->>'correlationId'), position): the
 * index range starts at the later of the transfer's first event and the cursor, in log order, and
 * stops after limit+1 rows of the chain. Every step of the process is appended after the previous one
 * committed, so the chain's positions grow with its steps and a keyset on the position misses none.
 * Events of the same correlation that are not the transfer's (a caller reusing its X-Correlation-Id)
 * are read and discarded by the filter.
 */
const PAGE_SQL = `SELECT ${EVENT_COLUMNS} FROM events
  WHERE metadata->>'correlationId' = $1 AND position > $2 AND (stream_id = $3 OR data->>'transferId' = $4)
  ORDER BY position
  LIMIT $5`;

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
      requested.metadata.correlationId,
      Math.max(afterPosition, requested.position - 1),
      streamId,
      transferId,
      limit + 1,
    ])) as StoredEventRow[];
    const items = rows.slice(0, limit).map((row) => toRecordedEvent(row, this.registry));
    return { items, nextAfterPosition: rows.length > limit ? items[items.length - 1].position : null };
  }
}
