import { ProblemException } from '../shared/problem-details/problem.exception.js';

/** Seconds a refused client is told to wait: a slot frees as soon as any stream ends. */
export const LIVE_FEED_RETRY_AFTER_SECONDS = 5;

/** A held slot; release() is idempotent, so every way a stream ends may call it. */
export interface LiveFeedLease {
  release(): void;
}

/**
 * Caps the open live streams of this process: per client (the token's subject) and in total. Counted
 * in memory, per instance, like the rate limits. Above a client's cap the answer is 429
 * LIVE_FEED_CLIENT_LIMIT (that client should close a stream); above the total, 503
 * LIVE_FEED_AT_CAPACITY (the instance is full, whoever asks); both with Retry-After.
 */
export class LiveFeedSlots {
  private total = 0;
  private readonly byClient = new Map<string, number>();

  constructor(private readonly limits: { readonly maxConnectionsPerClient: number; readonly maxConnections: number }) {}

  /** Takes a slot for `client`, or throws the problem to answer. */
  acquire(client: string): LiveFeedLease {
    const held = this.byClient.get(client) ?? 0;
    // The client's own cap first: a client at its cap is told about its own usage, even on a full instance.
    if (held >= this.limits.maxConnectionsPerClient) {
      throw refused(
        429,
        'LIVE_FEED_CLIENT_LIMIT',
        'Too many live streams',
        `This client already has ${held} open live streams, the most allowed; close one or retry after ${LIVE_FEED_RETRY_AFTER_SECONDS} s`,
        this.limits.maxConnectionsPerClient,
      );
    }
    if (this.total >= this.limits.maxConnections) {
      throw refused(
        503,
        'LIVE_FEED_AT_CAPACITY',
        'Live feed at capacity',
        `This instance serves the most live streams it allows (${this.limits.maxConnections}); retry after ${LIVE_FEED_RETRY_AFTER_SECONDS} s`,
        this.limits.maxConnections,
      );
    }
    this.byClient.set(client, held + 1);
    this.total++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        const left = (this.byClient.get(client) ?? 1) - 1;
        if (left > 0) this.byClient.set(client, left);
        else this.byClient.delete(client);
      },
    };
  }

  /** Open streams in this process (for tests and diagnostics). */
  get open(): number {
    return this.total;
  }
}

function refused(status: 429 | 503, code: string, title: string, detail: string, limit: number): ProblemException {
  return new ProblemException(status, code, title, detail, { limit }, { 'Retry-After': String(LIVE_FEED_RETRY_AFTER_SECONDS) });
}
