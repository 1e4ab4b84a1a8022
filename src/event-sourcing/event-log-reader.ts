import { Inject, Injectable } from '@nestjs/common';
import { EventBus } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import { Clock } from './clock.js';
import { QUERY_DATA_SOURCE } from './data-sources.js';
import { EventStore } from './event-store.js';
import { EventTypeRegistry } from './event-type.registry.js';
import { ProjectionRegistry } from './projection.registry.js';

/**
 * The event store as the query side sees it: the same reads (streams, the global log, time travel),
 * on the query side's connection. Queries use it for reads only; its role may not append anyway.
 */
@Injectable()
export class EventLogReader extends EventStore {
  constructor(
    @Inject(QUERY_DATA_SOURCE) dataSource: DataSource,
    registry: EventTypeRegistry,
    projections: ProjectionRegistry,
    eventBus: EventBus,
    clock: Clock,
  ) {
    super(dataSource, registry, projections, eventBus, clock);
  }
}
