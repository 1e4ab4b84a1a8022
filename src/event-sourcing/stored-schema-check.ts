import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { UnreadableEventSchemaError } from './errors.js';
import { EventTypeRegistry } from './event-type.registry.js';
import { sql } from './sql.js';

/**
 * At start-up, refuses to go on when the store holds an event type or schema version that no class
 * or upcaster chain can read: better a clear refusal naming the type than projections and commands
 * failing on it later.
 */
@Injectable()
export class StoredSchemaCheck {
  constructor(
    private readonly registry: EventTypeRegistry,
    private readonly dataSource: DataSource,
  ) {}

  async assertReadable(): Promise<void> {
    // Index-only over events_type_idx: one row per (type, schema version) ever stored.
    const { rows } = await sql<{ type: string; schema_version: number }>(
      this.dataSource.manager,
      'SELECT DISTINCT type, schema_version FROM events ORDER BY type, schema_version',
    );
    for (const row of rows) {
      const reason = this.registry.whyUnreadable(row.type, row.schema_version);
      if (reason) throw new UnreadableEventSchemaError(row.type, row.schema_version, reason);
    }
  }
}
