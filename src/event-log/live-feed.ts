import { type BeforeApplicationShutdown, Inject, Injectable } from '@nestjs/common';
import type { Response } from 'express';
import { APP_CONFIG } from '../config/app-config.provider.js';
import type { AppConfig } from '../config/app-config.js';
import { type Checkpoint, EventNotifier, EventLogReader } from '../event-sourcing/index.js';
import { LiveConnection } from './live-connection.js';
import { LiveFeedHub } from './live-feed-hub.js';
import { type LiveFeedLease, LiveFeedSlots } from './live-feed-slots.js';

/**
 * Server-Sent Events of the global log, as it commits, in commit-safe order. Each event's id is its
 * position; a client reconnecting with Last-Event-ID resumes right after that event, so it misses
 * nothing and sees nothing twice. One reader per process (LiveFeedHub) reads each batch of the log
 * once for every stream; a stream that starts behind catches up on its own first (LiveConnection).
 * Memory stays bounded per stream: its socket buffer and a bounded queue of shared frames; a client
 * whose socket does not drain within LIVE_FEED_STALL_TIMEOUT_MS is disconnected (and resumes from
 * its last id). Open streams are capped per client and per process (LiveFeedSlots).
 */
@Injectable()
export class LiveFeed implements BeforeApplicationShutdown {
  private readonly open = new Set<LiveConnection>();
  private readonly hub: LiveFeedHub;
  readonly slots: LiveFeedSlots;
  private stopping = false;

  constructor(
    private readonly store: EventLogReader,
    notifier: EventNotifier,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.hub = new LiveFeedHub(store, notifier, config.projections.pollIntervalMs);
    this.slots = new LiveFeedSlots(config.liveFeed);
  }

  /** A slot for one more stream of this client (the token's subject), or the 429/503 problem to answer. */
  admit(client: string): LiveFeedLease {
    return this.slots.acquire(client);
  }

  /** Where a new client starts: right after its Last-Event-ID, or at the current end of the log. */
  async startingPoint(lastEventId: number | undefined): Promise<Checkpoint | null> {
    if (lastEventId !== undefined)
      return lastEventId === 0 ? { transactionId: '0', position: 0 } : this.store.log.checkpointAt(lastEventId);
    return this.store.log.headCheckpoint();
  }

  /** Streams until the client goes, is too slow or the server stops; the lease is released as soon as the stream ends. */
  async stream(response: Response, from: Checkpoint, lease: LiveFeedLease): Promise<void> {
    const connection = new LiveConnection(response, from, {
      store: this.store,
      hub: this.hub,
      heartbeatMs: this.config.liveFeed.heartbeatMs,
      stallTimeoutMs: this.config.liveFeed.stallTimeoutMs,
      onEnd: () => lease.release(),
    });
    this.open.add(connection);
    if (this.stopping) connection.stop(); // arrived during shutdown: ended at once, the client reconnects elsewhere
    try {
      await connection.run();
    } finally {
      this.open.delete(connection);
      lease.release();
    }
  }

  /** Open streams would keep the HTTP server from closing. */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    for (const connection of this.open) connection.stop();
    await this.hub.stop();
  }
}
