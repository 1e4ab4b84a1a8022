import { EventEmitter } from 'node:events';
import { Inject, Injectable, Logger } from '@nestjs/common';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { PROJECTOR_DATA_SOURCE } from './data-sources.js';

const CHANNEL = 'events_appended';
const RECONNECT_DELAY_MS = 1000;

/**
 * LISTENs for the NOTIFY that a trigger on `events` sends when a transaction that appended commits,
 * and emits 'appended'. A dedicated connection (LISTEN is session state, so it cannot come from the
 * pool); if it drops it is re-opened, and runners poll anyway, so a missed notification only delays.
 */
@Injectable()
export class EventNotifier extends EventEmitter {
  private readonly logger = new Logger(EventNotifier.name);
  private client?: pg.Client;
  private stopped = true;
  private reconnectTimer?: NodeJS.Timeout;

  constructor(@Inject(PROJECTOR_DATA_SOURCE) private readonly dataSource: DataSource) {
    super();
    this.setMaxListeners(0);
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  /** Resolves on the next notification or after `timeoutMs`, whichever comes first. */
  waitForAppend(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.off('appended', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.once('appended', done);
    });
  }

  private async connect(): Promise<void> {
    const url = (this.dataSource.options as { url?: string }).url;
    const client = new pg.Client({ connectionString: url });
    client.on('notification', () => this.emit('appended'));
    client.on('error', (error) => {
      this.logger.warn(`LISTEN connection lost (${error.message}); runners keep polling`);
      this.scheduleReconnect(client);
    });
    client.on('end', () => this.scheduleReconnect(client));
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      this.client = client;
      if (this.stopped) await this.stop();
    } catch (error) {
      this.logger.warn(`Cannot LISTEN (${(error as Error).message}); runners keep polling`);
      this.scheduleReconnect(client);
    }
  }

  private scheduleReconnect(client: pg.Client): void {
    if (this.stopped || this.reconnectTimer || (this.client && this.client !== client)) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.stopped) void this.connect();
    }, RECONNECT_DELAY_MS);
  }
}
