import { setTimeout as sleep } from 'node:timers/promises';
import type { Response } from 'express';
import { type Checkpoint, type EventLogReader, compareCheckpoints } from '../event-sourcing/index.js';
import { LIVE_FEED_PAGE, type LiveFeedHub, type LiveFrame, type LiveSubscriber, frameOf } from './live-feed-hub.js';

/**
 * Frames a joined stream may have queued beyond what its socket holds. More than that and it is too
 * slow for the fan-out: the queue is dropped (the events stay in the log) and the stream goes back
 * to reading on its own, only as fast as its socket drains, until it catches up and joins again. So
 * a stream never holds more than its socket buffer plus this many (shared, already serialised) frames.
 */
export const LIVE_FEED_MAX_QUEUED = 1000;

const CATCH_UP_RETRY_MS = 50;

export interface LiveConnectionDeps {
  readonly store: EventLogReader;
  readonly hub: LiveFeedHub;
  readonly heartbeatMs: number;
  readonly stallTimeoutMs: number;
  /** Called once the stream is over for this server (closed, disconnected, or ended at shutdown). */
  readonly onEnd: () => void;
}

/**
 * One GET /events/live response: catches up from its starting point with reads of its own, then
 * takes its events from the hub. Writes only while the socket drains; a socket that does not drain
 * within the stall timeout is ended (the client resumes with its Last-Event-ID).
 */
export class LiveConnection implements LiveSubscriber {
  /** The last event written to the socket or queued for it. */
  after: Checkpoint;
  /** The last event written to the socket. */
  private written: Checkpoint;
  private queue: LiveFrame[] = [];
  private joined = false;
  private closed = false;
  private stopping = false;
  private lastWrite = Date.now();
  private wake?: () => void;

  constructor(
    private readonly response: Response,
    from: Checkpoint,
    private readonly deps: LiveConnectionDeps,
  ) {
    this.after = from;
    this.written = from;
    const gone = () => {
      this.closed = true;
      this.leave();
      this.deps.onEnd();
      this.wake?.();
    };
    response.on('close', gone);
    // A client that went while its starting point was read closed the response before anyone
    // listened: 'close' will not come again, and keep-alives to a dead socket never fail.
    if (response.destroyed || !response.socket || response.socket.destroyed) gone();
  }

  /** Streams until the client goes, is too slow, or the server stops. */
  async run(): Promise<void> {
    const { response } = this;
    if (this.over) return;
    response.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    response.write(`retry: 1000\n\n`);
    try {
      while (!this.over) {
        const ok = this.joined ? await this.sendQueued() : await this.catchUp();
        if (!ok) break;
        if (this.joined && this.queue.length === 0 && !this.over) await this.idle();
      }
    } catch {
      // A read of its own failed (the database went away…): end the stream; the client resumes
      // with its Last-Event-ID (the `retry` field says after 1 s).
    } finally {
      this.leave();
      this.end();
    }
  }

  /** The hub's next batch: keep what this stream does not have yet; drop out if it piles up. */
  deliver(frames: readonly LiveFrame[]): void {
    if (!this.joined) return;
    for (const frame of frames) {
      if (compareCheckpoints(frame.checkpoint, this.after) <= 0) continue; // joined ahead of the hub's tail
      this.queue.push(frame);
      this.after = frame.checkpoint;
    }
    if (this.queue.length > LIVE_FEED_MAX_QUEUED) {
      // Too slow to follow: go back to the last event actually written and read on alone.
      this.after = this.written;
      this.queue = [];
      this.leave();
    }
    this.wake?.();
  }

  /** Ends the stream at server shutdown. */
  stop(): void {
    this.stopping = true;
    this.leave();
    this.wake?.();
    if (this.response.headersSent) this.end(); // otherwise run() ends it right after its headers
  }

  private get over(): boolean {
    return this.closed || this.stopping;
  }

  private leave(): void {
    if (!this.joined) return;
    this.joined = false;
    this.deps.hub.leave(this);
  }

  private end(): void {
    if (!this.response.writableEnded) this.response.end();
    // Over for this server as soon as it ends the response (a stalled socket may take long to close).
    this.deps.onEnd();
  }

  /** One page of the log read by this stream itself, written as the socket drains; joins the hub once level with it. */
  private async catchUp(): Promise<boolean> {
    const missing = this.deps.hub.join(this);
    if (missing) {
      this.joined = true;
      this.queue.push(...missing);
      if (missing.length > 0) this.after = missing[missing.length - 1].checkpoint;
      return true;
    }
    const { events } = await this.deps.store.log.readAll(this.after, LIVE_FEED_PAGE);
    // Nothing to read, yet not level with the hub: events up to its tail are held back a moment
    // (the tail came from a Last-Event-ID in a transaction that committed late). Look again soon.
    if (events.length === 0) await sleep(CATCH_UP_RETRY_MS);
    for (const event of events) {
      if (this.over) return true;
      const frame = frameOf(event);
      this.after = frame.checkpoint;
      if (!(await this.write(frame))) return false;
    }
    return true;
  }

  /** Writes what the hub queued, waiting for the socket to drain between frames when it is full. */
  private async sendQueued(): Promise<boolean> {
    while (this.joined && this.queue.length > 0 && !this.over) {
      const frame = this.queue.shift()!;
      if (!(await this.write(frame))) return false;
    }
    return true;
  }

  /** Waits for the hub's next batch, the end, or the time for a keep-alive comment. */
  private async idle(): Promise<void> {
    const wait = this.deps.heartbeatMs - (Date.now() - this.lastWrite);
    if (wait <= 0) {
      this.response.write(': keep-alive\n\n');
      this.lastWrite = Date.now();
      return;
    }
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer); // called only after the timer below is set: from it, or from wake()
        if (this.wake === done) this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, wait);
      this.wake = done;
    });
  }

  /** False when the stream is over: closed, or the socket did not drain within the stall timeout. */
  private async write(frame: LiveFrame): Promise<boolean> {
    const sent = this.response.write(frame.text);
    this.written = frame.checkpoint;
    this.lastWrite = Date.now();
    // Socket full: wait for it to drain before writing more, so what sits in this process for a
    // client never exceeds the socket's buffer and one frame (plus the bounded queue).
    if (!sent && !(await this.drained())) return false;
    return !this.closed;
  }

  /** True once the response drained; false when it closed or did not drain within the stall timeout. */
  private drained(): Promise<boolean> {
    const { response } = this;
    return new Promise((resolve) => {
      const finish = (drained: boolean) => {
        clearTimeout(timer);
        response.off('drain', onDrain);
        response.off('close', onClose);
        resolve(drained);
      };
      const onDrain = () => finish(true);
      const onClose = () => finish(false);
      const timer = setTimeout(() => finish(false), this.deps.stallTimeoutMs);
      response.on('drain', onDrain);
      response.on('close', onClose);
    });
  }
}
