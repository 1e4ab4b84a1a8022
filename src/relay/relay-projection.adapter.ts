import { Injectable } from '@nestjs/common';
import type { Projection, RecordedEvent } from '../event-sourcing/index.js';
import { EventRelay } from './event-relay.js';

export const RELAY_PROJECTION_NAME = 'nats-relay';

/**
 * The relay's ONLY coupling to the projection engine: it runs as an async projection with no
 * table (a process manager), so it has the engine's guarantees — a checkpoint in commit order
 * (gap-safe), a lease with fencing (one publisher across instances), status, lag and retries in
 * /admin/projections. The engine hands a table-less projection one event at a time and advances
 * the checkpoint only after the handler returned (projection-reactions.ts), i.e. after the broker's
 * acknowledgement; a crash in between republishes the event, which the broker drops as a duplicate
 * of its message id. No `handles`: every event is relayed.
 *
 * When the engine's contract changes (process managers of their own), this file is what moves.
 */
@Injectable()
export class RelayProjection implements Projection {
  readonly name = RELAY_PROJECTION_NAME;
  readonly mode = 'async';
  readonly tables = [];

  constructor(private readonly relay: EventRelay) {}

  async applyBatch(events: readonly RecordedEvent[]): Promise<void> {
    for (const event of events) await this.relay.publish(event);
  }
}
