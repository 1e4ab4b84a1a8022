import { Injectable } from '@nestjs/common';
import { type ProcessManager, ReactionHandlers } from '../event-sourcing/index.js';
import { EventRelay } from './event-relay.js';

export const RELAY_PROJECTION_NAME = 'nats-relay';

/**
 * The relay's ONLY coupling to the projection engine: it runs as a process manager, so it has the
 * engine's guarantees — a checkpoint in commit order (gap-safe), a lease with fencing (one publisher
 * across instances), status, lag and retries in /admin/projections. The engine hands a process
 * manager one event at a time and advances the checkpoint only after the handler returned
 * (projection-reactions.ts), i.e. after the broker's acknowledgement; a crash in between republishes
 * the event, which the broker drops as a duplicate of its message id. onEvery: every event is relayed.
 */
@Injectable()
export class RelayProjection implements ProcessManager {
  readonly kind = 'process-manager';
  readonly name = RELAY_PROJECTION_NAME;
  /**
   * One event at a time, not in lanes: with lanes, a refusal in one stream's lane leaves the
   * checkpoint before it while other streams' events past it were published; each retry (the
   * engine's backoff, an operator's `projections retry` after `failed`) publishes them again, and
   * once that is later than the stream's duplicate window (2 minutes) the broker stores them twice.
   */
  readonly reactionConcurrency = 1;

  readonly handlers = new ReactionHandlers().onEvery((event) => this.relay.publish(event));

  constructor(private readonly relay: EventRelay) {}
}
