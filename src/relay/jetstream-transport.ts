import { setTimeout as sleep } from 'node:timers/promises';
import { type JetStreamClient, JetStreamApiError, RetentionPolicy, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  ConnectionError,
  type NatsConnection,
  NoRespondersError,
  RequestError,
  TimeoutError,
  connect,
  headers as natsHeaders,
} from '@nats-io/transport-node';
import type { EventTransport, OutgoingEvent } from './event-transport.js';

/** Every subject the relay publishes to: `ledger.events.<category>.<id>`. */
export const SUBJECT_PREFIX = 'ledger.events';
/** The broker drops a message id it has seen within this window (nanoseconds): a republish after a crash. */
export const DUPLICATE_WINDOW_NS = 2 * 60 * 1_000_000_000;
/** How long one publish waits for the broker's acknowledgement before it counts as unavailable. */
const PUBLISH_TIMEOUT_MS = 5_000;
/** How long a shutdown waits for the connection to close (it flushes what is buffered). */
const CLOSE_TIMEOUT_MS = 2_000;

export function subjectOf(event: Pick<OutgoingEvent, 'category' | 'entityId'>): string {
  return `${SUBJECT_PREFIX}.${event.category}.${event.entityId}`;
}

/**
 * NATS JetStream: a replicated log with server-side deduplication by message id (Nats-Msg-Id)
 * within the stream's duplicate window. The stream is created if missing: file storage, limits
 * retention with no age or size limit (the broker keeps what the ledger keeps; an operator may set
 * limits with `nats stream edit`), duplicate window 2 minutes.
 */
export class JetStreamTransport implements EventTransport {
  private connection?: Promise<NatsConnection>;
  private client?: JetStreamClient;
  private streamReady = false;

  constructor(
    private readonly url: string,
    private readonly streamName: string,
  ) {}

  async publish(event: OutgoingEvent): Promise<void> {
    const js = await this.jetstream();
    const headers = natsHeaders();
    for (const [key, value] of Object.entries(event.headers)) headers.set(key, value);
    // A duplicate (ack.duplicate) is an earlier publish of this very event, already stored: success.
    await js.publish(subjectOf(event), event.body, { msgID: event.messageId, headers, timeout: PUBLISH_TIMEOUT_MS });
  }

  isUnavailable(error: unknown): boolean {
    return (
      error instanceof TimeoutError ||
      error instanceof ConnectionError ||
      error instanceof NoRespondersError ||
      error instanceof RequestError ||
      // the stream is being recovered after a broker restart
      (error instanceof JetStreamApiError && error.status === 503)
    );
  }

  async close(): Promise<void> {
    const connection = this.connection;
    this.connection = undefined;
    if (!connection) return;
    // A first connect still waiting for a broker that is down never settles on its own: close it
    // if it ever connects, but do not wait for it. An established connection is closed (bounded).
    const established = await Promise.race([connection.catch(() => undefined), sleep(0).then(() => 'pending' as const)]);
    if (established === 'pending') {
      void connection.then((late) => late.close()).catch(() => undefined);
      return;
    }
    await Promise.race([established?.close(), sleep(CLOSE_TIMEOUT_MS)]);
  }

  private async jetstream(): Promise<JetStreamClient> {
    // Reconnects forever, and starts even if the broker is not up yet: the relay waits for it.
    this.connection ??= connect({
      servers: this.url.split(',').map((server) => server.trim()),
      name: 'ledger-relay',
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      waitOnFirstConnect: true,
    });
    const connection = await this.connection;
    if (!this.streamReady) {
      await this.ensureStream(connection);
      this.streamReady = true;
    }
    this.client ??= jetstream(connection);
    return this.client;
  }

  private async ensureStream(connection: NatsConnection): Promise<void> {
    const manager = await jetstreamManager(connection);
    try {
      await manager.streams.info(this.streamName);
    } catch (error) {
      if (!(error instanceof JetStreamApiError) || error.status !== 404) throw error;
      await manager.streams.add({
        name: this.streamName,
        subjects: [`${SUBJECT_PREFIX}.>`],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        duplicate_window: DUPLICATE_WINDOW_NS,
      });
    }
  }
}
