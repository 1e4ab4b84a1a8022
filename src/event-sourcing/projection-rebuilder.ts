import { Injectable, Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { UnknownProjectionError } from './errors.js';
import { EventTypeRegistry } from './event-type.registry.js';
import { ProjectionRegistry } from './projection.registry.js';
import { EVENT_COLUMNS, type StoredEventRow, toRecordedEvent } from './stored-event.row.js';


const PAGE_SIZE = 1000;

/**
 * Rebuilds a projection's tables from the whole event log, in one transaction:
 * - EXCLUSIVE locks keep writers (inline appends) out but let readers in, and MVCC keeps serving them
 *   the old rows until COMMIT, so a reader never sees an empty or half-built table;
 * - once the lock is held no transaction that writes these tables is in flight, so a plain scan in
 *   position order sees every event the projection has ever applied.
 */
@Injectable()
export class ProjectionRebuilder {
  private readonly logger = new Logger(ProjectionRebuilder.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly projections: ProjectionRegistry,
    private readonly registry: EventTypeRegistry,
  ) {}

  async rebuild(name: string): Promise<{ eventsApplied: number }> {
    const projection = this.projections.get(name);
    if (!projection) throw new UnknownProjectionError(name);
    const tables = projection.tables.map((table) => this.dataSource.driver.escape(table)).join(', ');

    return this.dataSource.transaction(async (manager) => {
      await manager.query(`LOCK TABLE ${tables} IN EXCLUSIVE MODE`);
      for (const table of projection.tables) {
        await manager.query(`DELETE FROM ${this.dataSource.driver.escape(table)}`);
      }
      let after = 0;
      let eventsApplied = 0;
      for (;;) {
        const rows = (await manager.query(
          `SELECT ${EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT ${PAGE_SIZE}`,
          [after],
        )) as StoredEventRow[];
        for (const row of rows) {
          const event = toRecordedEvent(row, this.registry);
          const handler = projection.handlers.handlerFor(event);
          if (handler) {
            await handler(event, manager);
            eventsApplied++;
          }
          after = event.position;
        }
        if (rows.length < PAGE_SIZE) break;
      }
      this.logger.log(`Rebuilt projection ${name} from ${eventsApplied} events`);
      return { eventsApplied };
    });
  }
}
