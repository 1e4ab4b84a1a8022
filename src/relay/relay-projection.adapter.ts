import { Inject, Injectable } from '@nestjs/common';
import { type ProcessManager, ReactionHandlers, type RecordedEvent, currentFence } from '../event-sourcing/index.js';
import { AcknowledgedEvents } from './acknowledged-events.js';
import { EventRelay } from './event-relay.js';

export const RELAY_PROJECTION_NAME = 'nats-relay';

/** NATS_PUBLISH_CONCURRENCY: how many streams' events the relay publishes at once (see RelayProjection). */
export const RELAY_PUBLISH_CONCURRENCY = Symbol('RelayPublishConcurrency');

/**
 * The relay's ONLY coupling to the projection engine: it runs as a process manager, so it has the
 * engine's guarantees — a checkpoint in commit order (gap-safe), a lease with fencing (one publisher
 * across instances), status, lag and retries in /admin/projections. The engine advances the
 * checkpoint only past the completed prefix of a batch (projection-reactions.ts), i.e. after the
 * broker acknowledged every event up to it; a crash in between republishes the events past it, which
 * the broker drops as duplicates of their message ids. onEvery: every event is relayed.
 *
 * Pipelined: the engine runs a batch in lanes keyed by stream id (the default keyOf), up to
 * `reactionConcurrency` streams at once, each stream's events one at a time in version order (so
 * each subject gets them in order). A lane that fails (a broker refusal) leaves the checkpoint
 * before its event while other lanes published past it: the events acknowledged in this lease
 * holding are remembered (AcknowledgedEvents) and skipped when the same holder retries, so a retry
 * later than the broker's duplicate window does not store them twice.
 */
@Injectable()
export class RelayProjection implements ProcessManager {
  readonly kind = 'process-manager';
  readonly name = RELAY_PROJECTION_NAME;
  private readonly acknowledged = new AcknowledgedEvents();

  readonly handlers = new ReactionHandlers().onEvery((event) => this.publishOnce(event));

  constructor(
    private readonly relay: EventRelay,
    @Inject(RELAY_PUBLISH_CONCURRENCY) readonly reactionConcurrency: number,
  ) {}

  private async publishOnce(event: RecordedEvent): Promise<void> {
    // The engine runs every reaction for its holding (runFenced); without one (never in the engine)
    // nothing is remembered.
    const holding = currentFence()?.holding;
    if (holding && this.acknowledged.has(holding, event)) return;
    await this.relay.publish(event);
    if (holding) this.acknowledged.remember(holding, event);
  }
}
