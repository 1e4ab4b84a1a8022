import { Inject, Injectable } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { PROJECTOR_DATA_SOURCE, type ProcessManager, ReactionHandlers, type RecordedEvent, currentFence } from '../event-sourcing/index.js';
import { EventRelay } from './event-relay.js';

export const RELAY_PROJECTION_NAME = 'nats-relay';

/** NATS_PUBLISH_CONCURRENCY: how many streams' events the relay publishes at once (see RelayProjection). */
export const RELAY_PUBLISH_CONCURRENCY = Symbol('RelayPublishConcurrency');

/**
 * The relay's ONLY coupling to the projection engine: it runs as a process manager, so it has the
 * engine's guarantees — a checkpoint in commit order (gap-safe), a lease with fencing (one publisher
 * across instances), status, lag and retries in /admin/projections. onEvery: every event is relayed.
 *
 * Pipelined: the engine runs a batch in lanes keyed by stream id (the default keyOf), up to
 * `reactionConcurrency` streams at once, each stream's events one at a time in version order (so
 * each subject gets them in order). The checkpoint takes the prefix of the batch the broker
 * acknowledged; the events other lanes had acknowledged past it are written with the checkpoint
 * (projection_checkpoints.completed_ahead) and skipped by every later holder — a retry, a restart,
 * another instance — so a republish later than the broker's duplicate window cannot store them
 * twice. Only a crash between an acknowledgement and that write republishes, which the broker drops
 * within its window (message id `<streamId>:<version>`).
 */
@Injectable()
export class RelayProjection implements ProcessManager {
  readonly kind = 'process-manager';
  readonly name = RELAY_PROJECTION_NAME;
  readonly handlers = new ReactionHandlers().onEvery((event) => this.publish(event));

  constructor(
    private readonly relay: EventRelay,
    @Inject(RELAY_PUBLISH_CONCURRENCY) readonly reactionConcurrency: number,
    @Inject(PROJECTOR_DATA_SOURCE) private readonly dataSource: DataSource,
  ) {}

  private publish(event: RecordedEvent): Promise<void> {
    // The engine runs every reaction for its holding (runFenced): the lease is checked in the
    // database before a publish is tried again after waiting for the broker (EventRelay.publish).
    const fence = currentFence();
    return this.relay.publish(event, fence && (() => fence.verify(this.dataSource.manager)));
  }
}
