import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { type BeforeApplicationShutdown, Inject, Injectable } from '@nestjs/common';
import type { Response } from 'express';
import { APP_CONFIG } from '../config/app-config.provider.js';
import type { AppConfig } from '../config/app-config.js';
import { type Checkpoint, EventNotifier, EventStore } from '../event-sourcing/index.js';
import { EventResponse } from './event.response.js';

const PAGE = 100;

/**
 * Server-Sent Events of the global log, as it commits, in commit-safe order. Each event's id is its
 * position; a client reconnecting with Last-Event-ID resumes right after that event, so it misses
 * nothing and sees nothing twice. Memory stays bounded: the log is read one page at a time and only
 * while the socket drains; a client that lets more than LIVE_FEED_MAX_BUFFER_BYTES pile up unsent is
 * disconnected (and resumes from its last id).
 */
@Injectable()
export class LiveFeed implements BeforeApplicationShutdown {
  private readonly open = new Set<Response>();
  private stopping = false;

  constructor(
    private readonly store: EventStore,
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
    while (!closed && !this.stopping) {
      const { events } = await this.store.readAll(checkpoint, PAGE);
      for (const event of events) {
        const sent = response.write(`id: ${event.position}\nevent: ${event.type}\ndata: ${JSON.stringify(EventResponse.of(event))}\n\n`);
        checkpoint = { transactionId: event.transactionId, position: event.position };
        lastWrite = Date.now();
        if (response.writableLength > this.config.liveFeed.maxBufferBytes) {
          response.end(); // too far behind: let it come back with Last-Event-ID
          return;
        }
        if (!sent) {
          await Promise.race([once(response, 'drain'), once(response, 'close')]);
          if (closed) return;
        }
      }
      if (events.length === PAGE) continue;
      if (Date.now() - lastWrite >= this.config.liveFeed.heartbeatMs) {
        response.write(': keep-alive\n\n');
        lastWrite = Date.now();
      }
      if (events.length === 0 && (await this.store.hasCommittedAfter(checkpoint))) await sleep(10); // held back briefly
      else await this.notifier.waitForAppend(Math.min(1000, this.config.liveFeed.heartbeatMs));
    }
    if (!closed) response.end();
  }

  /** Open streams would keep the HTTP server from closing. */
  beforeApplicationShutdown(): void {
    this.stopping = true;
    this.notifier.emit('appended');
    for (const response of this.open) response.end();
  }
}
