import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { type RecordedEvent, ReactionAbandoned } from '../event-sourcing/index.js';
import { EVENT_TRANSPORT, type EventTransport } from './event-transport.js';
import { toOutgoingEvent } from './outgoing-event.js';

const RETRY_BASE_MS = 200;
const RETRY_MAX_MS = 5_000;
/** Outage log lines at most this often over all lanes: up to NATS_PUBLISH_CONCURRENCY publishes wait at once. */
const LOG_INTERVAL_MS = 1_000;
/**
 * At shutdown, how long publishes already sent may still wait for their acknowledgement. Given up at
 * once, a publish the broker stored but had not acknowledged yet stays before the checkpoint and is
 * published again at the next start — stored twice when that start is later than the duplicate
 * window (test/relay-sigterm-restart.e2e-spec.ts). A broker that is up answers in milliseconds; one
 * that is down costs the shutdown this much at most.
 */
const IN_FLIGHT_GRACE_MS = 2_000;

/**
 * The relay is shutting down before the broker acknowledged: the event stays for the next start. A
 * ReactionAbandoned, so the engine counts no failed attempt for it (the relay closes in
 * onModuleDestroy, before the engine stops its runners, and would otherwise be counted at every
 * SIGTERM under write load, and stop in `failed` after PROJECTION_MAX_ATTEMPTS restarts in an outage).
 */
export class RelayClosing extends ReactionAbandoned {}

/**
 * Publishes committed events through the transport. Called by the relay's lanes (one per stream,
 * up to NATS_PUBLISH_CONCURRENCY at once; relay-projection.adapter.ts), each awaiting one publish
 * before its stream's next, so each stream's versions arrive in order.
 *
 * While the broker cannot be reached the publish is retried in place with backoff (200 ms doubling
 * to 5 s), for as long as the outage lasts: the engine's own retries would stop the relay in
 * `failed` after PROJECTION_MAX_ATTEMPTS, which an outage of a minute must not do. The relay's
 * checkpoint does not move meanwhile, so its lag grows in /admin/projections. A refusal by the
 * broker (not an outage) is thrown to the engine, which retries it with its backoff and stops.
 */
@Injectable()
export class EventRelay implements OnModuleDestroy {
  private readonly logger = new Logger(EventRelay.name);
  private closing = false;
  /** Rejects IN_FLIGHT_GRACE_MS after the relay started closing: a publish still waiting then (e.g.
   * for a first connection to a broker that is down, which no timeout bounds) is given up instead of
   * holding the shutdown. */
  private readonly closed: Promise<never>;
  private signalClosed!: (error: RelayClosing) => void;
  private readonly lastLoggedAt = { unavailable: Number.NEGATIVE_INFINITY, reachable: Number.NEGATIVE_INFINITY };

  constructor(@Inject(EVENT_TRANSPORT) private readonly transport: EventTransport) {
    this.closed = new Promise<never>((_, reject) => (this.signalClosed = reject));
    this.closed.catch(() => undefined); // observed by the publishes that race it
  }

  /**
   * `stillHolding` (the relay's lease fence) is checked before every publish again after waiting for
   * the broker, and throws if the lease is lost: the database fence covers commits, not publishes, and
   * a holder paused or cut off during an outage would otherwise publish, after another instance took
   * over and published on, the event it was waiting on — past the duplicate window that is stored
   * twice, after later versions of its subject (test/relay-paused-holder.e2e-spec.ts).
   */
  async publish(event: RecordedEvent, stillHolding?: () => Promise<void>): Promise<void> {
    const outgoing = toOutgoingEvent(event);
    for (let attempt = 1; ; attempt++) {
      try {
        if (this.closing) throw new RelayClosing(`shutting down before the broker acknowledged ${outgoing.messageId}`);
        if (attempt > 1) await stillHolding?.();
        await Promise.race([this.transport.publish(outgoing), this.closed]);
        if (attempt > 1 && this.mayLog('reachable'))
          this.logger.log(`broker reachable again: ${outgoing.messageId} published after ${attempt} attempts`);
        return;
      } catch (error) {
        if (error instanceof RelayClosing) throw error;
        if (!this.transport.isUnavailable(error)) throw error;
        if (this.closing) throw new RelayClosing(`shutting down before the broker acknowledged ${outgoing.messageId}`);
        const delay = Math.min(RETRY_BASE_MS * 2 ** (attempt - 1), RETRY_MAX_MS);
        if ((attempt === 1 || delay === RETRY_MAX_MS) && this.mayLog('unavailable')) {
          this.logger.warn(
            `broker unavailable (${error instanceof Error ? error.message : String(error)}): retrying ${outgoing.messageId} in ${delay} ms`,
          );
        }
        await this.pause(delay);
      }
    }
  }

  /** Stops waiting for the broker first (so the engine's runner can stop), then closes the connection. */
  async onModuleDestroy(): Promise<void> {
    this.stopWaiting();
  }

  async close(): Promise<void> {
    this.stopWaiting();
    await this.transport.close();
  }

  /** No new publish or retry starts; the ones in flight get IN_FLIGHT_GRACE_MS for their acknowledgement. */
  private stopWaiting(): void {
    if (this.closing) return;
    this.closing = true;
    setTimeout(
      () => this.signalClosed(new RelayClosing('shutting down before the broker acknowledged the event')),
      IN_FLIGHT_GRACE_MS,
    ).unref();
  }

  /** Whether an outage line of this kind may be logged now (one a second over all lanes, not one per lane). */
  private mayLog(kind: keyof EventRelay['lastLoggedAt']): boolean {
    const now = performance.now();
    if (now - this.lastLoggedAt[kind] < LOG_INTERVAL_MS) return false;
    this.lastLoggedAt[kind] = now;
    return true;
  }

  private async pause(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (!this.closing && Date.now() < until) await sleep(Math.min(50, until - Date.now()));
  }
}
