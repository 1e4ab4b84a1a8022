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
  /**
   * One event at a time, not in lanes: with lanes, a refusal in one stream's lane leaves the
   * checkpoint before it while other streams' events past it were published; each retry (the
   * engine's backoff, an operator's `projections retry` after `failed`) publishes them again, and
   * once that is later than the stream's duplicate window (2 minutes) the broker stores them twice.
   */
  readonly reactionConcurrency = 1;

  constructor(private readonly relay: EventRelay) {}

  async applyBatch(events: readonly RecordedEvent[]): Promise<void> {
    for (const event of events) await this.relay.publish(event);
  }
}
