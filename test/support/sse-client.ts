import { type ClientRequest, type IncomingMessage, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import { testToken } from './auth.js';

/**
 * A raw Server-Sent Events client on node:http (no EventSource polyfill, no reconnection of its own),
 * so a test controls exactly when it disconnects, what Last-Event-ID it sends and whether it reads.
 * Parses text/event-stream as the WHATWG spec says (fields id, event, data, retry; ':' comments).
 */

export interface SseMessage {
  readonly id: string | undefined;
  readonly event: string | undefined;
  readonly data: string;
}

/** A parsed message of GET /events/live: id is the position, event the type, data the event JSON. */
export interface FeedMessage {
  readonly id: number;
  readonly event: string;
  readonly data: Record<string, any>;
}

export interface SseOpenOptions {
  /** Sent as the Last-Event-ID header. */
  readonly lastEventId?: string;
  /** Extra query string, e.g. `lastEventId=12`. */
  readonly query?: string;
  readonly path?: string;
  /** Bearer token; default: one with every scope; null: no Authorization header. */
  readonly token?: string | null;
}

/** The answer when the server refused the stream (not 200): status, headers and the parsed body. */
export interface SseRefusal {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: any;
}

/** Port of an app that listens (call `app.listen(0)` first). */
export function portOf(app: INestApplication): number {
  const address = app.getHttpServer().address() as AddressInfo | null;
  if (!address) throw new Error('the app does not listen: call app.listen(0) first');
  return address.port;
}

export class SseConnection {
  readonly messages: SseMessage[] = [];
  /** Comment lines (": keep-alive") and retry fields seen, for completeness. */
  readonly comments: string[] = [];
  retry: number | undefined;
  /** Bytes of the stream received so far. */
  bytesReceived = 0;
  /** Resolves when the server ended the response (or the connection closed). */
  readonly ended: Promise<'end' | 'close'>;
  private endedHow: 'end' | 'close' | undefined;
  private buffer = '';
  private pending: { id?: string; event?: string; data: string[] } = { data: [] };
  private waiters = new Set<() => void>();

  constructor(
    readonly request: ClientRequest,
    readonly response: IncomingMessage,
  ) {
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => this.feed(chunk));
    this.ended = new Promise((resolve) => {
      response.once('end', () => {
        this.endedHow ??= 'end';
        this.notify();
        resolve(this.endedHow);
      });
      response.once('close', () => {
        this.endedHow ??= 'close';
        this.notify();
        resolve(this.endedHow);
      });
    });
  }

  get headers(): IncomingMessage['headers'] {
    return this.response.headers;
  }

  /** True once the server ended the stream cleanly ('end') or the socket closed. */
  get isEnded(): boolean {
    return this.endedHow !== undefined;
  }

  /** The messages of the live feed, parsed and checked to be well formed. */
  feedMessages(): FeedMessage[] {
    return this.messages.map((message) => {
      if (message.id === undefined || !/^[1-9][0-9]*$/.test(message.id))
        throw new Error(`message without a position id: ${JSON.stringify(message)}`);
      if (message.event === undefined) throw new Error(`message without an event type: ${JSON.stringify(message)}`);
      return { id: Number(message.id), event: message.event, data: JSON.parse(message.data) as Record<string, any> };
    });
  }

  lastId(): string | undefined {
    for (let index = this.messages.length - 1; index >= 0; index--)
      if (this.messages[index].id !== undefined) return this.messages[index].id;
    return undefined;
  }

  /** Stops reading: the socket's buffers fill up, and the server sees a slow client. */
  pause(): void {
    this.response.pause();
  }

  /** Starts reading again (data is still parsed by the 'data' listener). */
  resume(): void {
    this.response.resume();
  }

  /** Disconnects abruptly, as a browser tab closing would. */
  close(): void {
    this.request.destroy();
    this.response.destroy();
  }

  /**
   * Waits until `predicate` holds for the messages received so far; a guard timeout (not a
   * performance threshold) turns a hang into a failure that says what was received.
   */
  waitFor(what: string, predicate: (messages: readonly SseMessage[]) => boolean, timeoutMs = 20_000): Promise<void> {
    return this.waitUntil(what, () => predicate(this.messages), timeoutMs);
  }

  /** Waits until `condition` holds (checked after every chunk received), under the same guard. */
  async waitUntil(what: string, condition: () => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (this.isEnded)
        throw new Error(`stream ended while waiting for ${what}; received ${this.messages.length} messages, last id ${this.lastId()}`);
      const remaining = deadline - Date.now();
      if (remaining <= 0)
        throw new Error(`timed out waiting for ${what}; received ${this.messages.length} messages, last id ${this.lastId()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(remaining, 250));
        const waiters = this.waiters;
        function done() {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        }
        waiters.add(done);
      });
    }
  }

  /** Waits until a message with this id (a position) has arrived. */
  waitForId(position: number, timeoutMs?: number): Promise<void> {
    const id = String(position);
    return this.waitFor(`the event at position ${position}`, (messages) => messages.some((message) => message.id === id), timeoutMs);
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private feed(chunk: string): void {
    this.bytesReceived += Buffer.byteLength(chunk);
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, newline);
      const length = this.buffer.startsWith('\r\n', newline) ? 2 : 1;
      if (this.buffer[newline] === '\r' && length === 1 && newline === this.buffer.length - 1) break; // maybe \r\n split across chunks
      this.buffer = this.buffer.slice(newline + length);
      this.line(line);
    }
    this.notify();
  }

  /** One line of the stream; true when it completed a message. */
  private line(line: string): boolean {
    if (line === '') {
      const { id, event, data } = this.pending;
      this.pending = { data: [] };
      if (data.length === 0 && id === undefined && event === undefined) return false;
      this.messages.push({ id, event, data: data.join('\n') });
      return true;
    }
    if (line.startsWith(':')) {
      this.comments.push(line.slice(1).trim());
      return false;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id') this.pending.id = value;
    else if (field === 'event') this.pending.event = value;
    else if (field === 'data') this.pending.data.push(value);
    else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
    return false;
  }
}

/**
 * GET /events/live (or `options.path`) on 127.0.0.1:`port`. Resolves with the open connection when
 * the answer is 200, or with the refusal (status, headers, parsed body) otherwise.
 */
export function openSse(port: number, options: SseOpenOptions = {}): Promise<SseConnection | SseRefusal> {
  const path = `${options.path ?? '/events/live'}${options.query ? `?${options.query}` : ''}`;
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (options.token !== null) headers.authorization = `Bearer ${options.token ?? testToken()}`;
  if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId;
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', headers, agent: false }, (response) => {
      if (response.statusCode === 200) {
        resolve(new SseConnection(req, response));
        return;
      }
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: keep the text
        }
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body });
      });
      response.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** openSse, expecting the stream to be accepted. */
export async function connectSse(port: number, options: SseOpenOptions = {}): Promise<SseConnection> {
  const result = await openSse(port, options);
  if (!(result instanceof SseConnection)) throw new Error(`GET /events/live answered ${result.status}: ${JSON.stringify(result.body)}`);
  return result;
}
