import { setTimeout as sleep } from 'node:timers/promises';
import { type BeforeApplicationShutdown, Inject, Injectable } from '@nestjs/common';
import type { Response } from 'express';
import { APP_CONFIG } from '../config/app-config.provider.js';
import type { AppConfig } from '../config/app-config.js';
import { type Checkpoint, EventNotifier, EventLogReader } from '../event-sourcing/index.js';
import { EventResponse } from './event.response.js';

const PAGE = 100;

/**
 * Server-Sent Events of the global log, as it commits, in commit-safe order. Each event's id is its
 * position; a client reconnecting with Last-Event-ID resumes right after that event, so it misses
 * nothing and sees nothing twice. Memory stays bounded: the log is read one page at a time and only
 * while the socket drains; a client whose socket does not drain within LIVE_FEED_STALL_TIMEOUT_MS is
 * disconnected (and resumes from its last id).
 */
@Injectable()
export class LiveFeed implements BeforeApplicationShutdown {
  private readonly open = new Set<Response>();
  private stopping = false;

  constructor(
    private readonly store: EventLogReader,
    private readonly notifier: EventNotifier,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Where a new client starts: right after its Last-Event-ID, or at the current end of the log. */
  async startingPoint(lastEventId: number | undefined): Promise<Checkpoint | null> {
    if (lastEventId !== undefined) return lastEventId === 0 ? { transactionId: '0', position: 0 } : this.store.checkpointAt(lastEventId);
    return this.store.headCheckpoint();
  }

  async stream(response: Response, from: Checkpoint): Promise<void> {
    this.open.add(response);
    let closed = false;
    response.on('close', () => {
      closed = true;
      this.open.delete(response);
    });
    response.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    response.write(`retry: 1000\n\n`);
    let checkpoint = from;
    let lastWrite = Date.now();
    let heldBackMs = 0;
    while (!closed && !this.stopping) {
      const { events } = await this.store.readAll(checkpoint, PAGE);
      for (const event of events) {
        const sent = response.write(`id: ${event.position}\nevent: ${event.type}\ndata: ${JSON.stringify(EventResponse.of(event))}\n\n`);
        checkpoint = { transactionId: event.transactionId, position: event.position };
        lastWrite = Date.now();
        // Socket full: wait for it to drain, reading no more of the log meanwhile, so what is held for
        // a client never exceeds the socket's buffer and one event. A client that does not drain
        // within the stall timeout is behind for good: disconnect it; it resumes from its last id.
        if (!sent && !(await this.drained(response))) {
          response.end();
          return;
        }
        if (closed) return;
      }
      if (events.length === PAGE) continue;
      if (Date.now() - lastWrite >= this.config.liveFeed.heartbeatMs) {
        response.write(': keep-alive\n\n');
        lastWrite = Date.now();
      }
      if (events.length === 0 && (await this.store.hasCommittedAfter(checkpoint))) {
        // Held back by an older transaction still in flight: look again soon, less often the longer it lasts.
        heldBackMs = Math.min(Math.max(heldBackMs * 2, 10), 1000);
        await sleep(heldBackMs);
      } else {
        heldBackMs = 0;
        await this.notifier.waitForAppend(Math.min(1000, this.config.liveFeed.heartbeatMs));
      }
    }
    if (!closed) response.end();
  }

  /** True once the response drained; false when it closed or did not drain within the stall timeout. */
  private drained(response: Response): Promise<boolean> {
    return new Promise((resolve) => {
      const finish = (drained: boolean) => {
        clearTimeout(timer);
        response.off('drain', onDrain);
        response.off('close', onClose);
        resolve(drained);
      };
      const onDrain = () => finish(true);
      const onClose = () => finish(false);
      const timer = setTimeout(() => finish(false), this.config.liveFeed.stallTimeoutMs);
      response.on('drain', onDrain);
      response.on('close', onClose);
    });
  }

  /** Open streams would keep the HTTP server from closing. */
  beforeApplicationShutdown(): void {
    this.stopping = true;
    this.notifier.emit('appended');
    for (const response of this.open) response.end();
  }
}
