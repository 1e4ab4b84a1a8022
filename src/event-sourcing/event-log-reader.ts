import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { CommitOrderLog } from './commit-order-log.js';
import { QUERY_DATA_SOURCE } from './data-sources.js';
import { EventTypeRegistry } from './event-type.registry.js';
import { StreamReads } from './stream-reads.js';

/**
 * The event store as the query side sees it, on the query side's connection: the reads of one stream
 * (history, time travel) and, as `log`, the global log in commit-safe order (feeds). Read-only by
 * construction: it has no append to inherit.
 */
@Injectable()
export class EventLogReader extends StreamReads {
  readonly log: CommitOrderLog;

  constructor(@Inject(QUERY_DATA_SOURCE) dataSource: DataSource, registry: EventTypeRegistry) {
    super(() => dataSource.manager, registry);
    this.log = new CommitOrderLog(dataSource, registry);
  }
}
