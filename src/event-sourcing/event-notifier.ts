import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Inject, Injectable, Logger } from '@nestjs/common';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { PROJECTOR_DATA_SOURCE } from './data-sources.js';
import { ListeningPeers } from './listening-peers.js';
import type { RecordedEvent } from './recorded-event.js';

const CHANNEL = 'events_appended';
/**
 * Read-your-writes across instances (see ProjectionWaiter): `waiting:<projection>` asks the instance
 * that runs the projection to say when it advances, `advanced:<projection>` is its answer. A channel
 * of its own, so that these never wake the runners or the live feed.
 */
const PROGRESS_CHANNEL = 'projection_progress';
/** Which instances listen (ListeningPeers): `hello:<instance>`, `here:<instance>`, `bye:<instance>`. */
const PRESENCE_CHANNEL = 'ledger_instances';
export type ProgressSignal = 'waiting' | 'advanced';
const RECONNECT_DELAY_MS = 1000;
/** How long a stopping notifier waits for its last wake-up NOTIFY to be sent. */
const STOP_SIGNAL_TIMEOUT_MS = 1000;
/** The payload of a NOTIFY that says "a projection's row was changed by an operator" (not an append). */
export const PROJECTIONS_CHANGED = 'projections';
/** The payload of the wake-up an instance sends after its appends committed: `appended:<instance>`. */
const APPENDED = 'appended:';
/** Default of `wakeSignalMs`: at most this often an instance tells the others that it appended. */
export const DEFAULT_WAKE_SIGNAL_MS = 10;
/** How often an instance says it still listens (`here:<instance>:<this interval>`). */
const PRESENCE_INTERVAL_MS = 2000;
/** How long an answer to a newcomer's hello waits, to answer every hello of that wait at once. */
const ANSWER_DELAY_MS = 20;

export interface EventNotifierOptions {
  /** At most one cross-instance wake-up NOTIFY per this many ms (PROJECTION_WAKE_SIGNAL_MS). */
  readonly wakeSignalMs?: number;
}

/**
 * Wakes the readers of the log (projection runners, live feeds) when events were appended, and emits
 * 'appended':
 * - in this process, at once: the EventStore calls `appendCommitted()` after each commit that
 *   appended (wake-ups of one tick are coalesced into one);
 * - in other instances, by a NOTIFY on `events_appended` sent after the commit, outside the append's
 *   transaction, at most once per `wakeSignalMs` per instance (a throttle with a trailing send, so
 *   the last append of a burst is always signalled), and only while another instance listens
 *   (ListeningPeers: the instances say so on a channel of their own). A NOTIFY inside every append
 *   transaction (the trigger of migration 002, dropped by 017) made appends commit one at a time:
 *   PostgreSQL holds a database-wide lock on the notification queue from a notifying transaction's
 *   pre-commit through its commit, which defeated the server's group commit (docs/BENCHMARKS.md).
 * LISTEN needs a dedicated connection (it is session state, so it cannot come from the pool); if it
 * drops it is re-opened, and runners poll anyway, so a missed notification only delays. Rows inserted
 * by something else than an EventStore (a script, psql) wake nobody: runners find them by polling.
 *
 * `sequence` counts the wake-ups, so that a reader can tell whether one came while it was busy
 * (between its read and its wait) without listening all the time; `projectionsChanged` counts the
 * operators' changes to projection rows (ProjectionEngine.wake, in any instance). On its own channel
 * it also carries projection progress between instances: it emits 'projectionWaiting' (name) and
 * 'projectionAdvanced' (name).
 */
@Injectable()
export class EventNotifier extends EventEmitter {
  private readonly logger = new Logger(EventNotifier.name);
  private client?: pg.Client;
  private stopped = true;
  private reconnectTimer?: NodeJS.Timeout;
  sequence = 0;
  projectionsChanged = 0;
  /** Tells this instance's own wake-up NOTIFY from the others'. */
  private readonly instance = randomUUID();
  private wakeSignalMs = DEFAULT_WAKE_SIGNAL_MS;
  private localWakeQueued = false;
  /** The events of the commits whose wake-up is queued for the next turn. */
  private committedThisTurn: RecordedEvent[] = [];
  private signalWanted = false;
  private signalSending = false;
  private signalTimer?: NodeJS.Timeout;
  private lastSignalAt = -Infinity;
  private readonly peers = new ListeningPeers();
  private presenceTimer?: NodeJS.Timeout;
  private herePending = false;
  /** Set while an answer to newcomers' hellos is due: one `here` answers every hello of its wait. */
  private answerTimer?: NodeJS.Timeout;
  /** The last query sent on the LISTEN connection: the next one waits for it (see onListenConnection). */
  private listenQueries: Promise<unknown> = Promise.resolve();

  constructor(@Inject(PROJECTOR_DATA_SOURCE) private readonly dataSource: DataSource) {
    super();
    this.setMaxListeners(0);
  }

  async start(options: EventNotifierOptions = {}): Promise<void> {
    this.wakeSignalMs = options.wakeSignalMs ?? DEFAULT_WAKE_SIGNAL_MS;
    this.stopped = false;
    await this.connect();
    if (this.stopped) return; // stopped while connecting: no timer may outlive the stop
    clearInterval(this.presenceTimer);
    this.presenceTimer = setInterval(() => this.sayHereAgain(), PRESENCE_INTERVAL_MS);
    this.presenceTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.signalTimer);
    clearInterval(this.presenceTimer);
    clearTimeout(this.answerTimer);
    this.signalTimer = undefined;
    // Appends the throttle was still holding back are announced now: dropping the NOTIFY left the
    // other instances waiting for their poll after every graceful stop (found in review). Then the
    // `bye`, after it on the same connection, so that the others stop waking this instance now rather
    // than after its words are missed. Both bounded together: a connection that no longer answers
    // must not hold the shutdown (the others still poll).
    const signalled = this.signalWanted ? this.sendSignal() : Promise.resolve();
    const said = signalled.then(() => this.sendOnListenConnection(PRESENCE_CHANNEL, `bye:${this.instance}`));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([said, new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_SIGNAL_TIMEOUT_MS)))]);
    clearTimeout(timer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  /**
   * Wakes every waiter, as a notification does (`projectionsChanged`: an operator changed a
   * projection). 'appended' carries the events when this process appended them (a segment's runner
   * wakes at once only for its own: SegmentWakeUps), nothing when they are not known here.
   */
  notify(projectionsChanged = false, events?: readonly RecordedEvent[]): void {
    this.sequence++;
    if (projectionsChanged) this.projectionsChanged++;
    this.emit('appended', events);
  }

  /**
   * Called by the EventStore after a transaction that appended committed (never before: a reader
   * woken earlier could miss the events). Wakes this process's readers on the next turn of the event
   * loop, once for every commit of that turn, and the other instances' soon after (see the class).
   */
  appendCommitted(events: readonly RecordedEvent[]): void {
    this.committedThisTurn.push(...events);
    if (!this.localWakeQueued) {
      this.localWakeQueued = true;
      setImmediate(() => {
        this.localWakeQueued = false;
        const committed = this.committedThisTurn;
        this.committedThisTurn = [];
        this.notify(false, committed);
      });
    }
    // Nobody else listens: the readers of this process were all woken above. While this instance's
    // own LISTEN is down it cannot know, and signals as if somebody did.
    if (this.stopped || (this.client && !this.peers.any())) return;
    this.signalWanted = true;
    this.scheduleSignal();
  }

  /**
   * A word from another instance, which says it again every `intervalMs`. One not heard from before
   * is sent a wake-up now: it covers the appends this instance committed (and did not signal) before
   * it knew that one listened.
   */
  private heardFrom(instance: string, intervalMs: number): void {
    if (!this.peers.heard(instance, intervalMs) || this.stopped) return;
    this.signalWanted = true;
    this.scheduleSignal();
  }

  /**
   * The periodic `here`; skipped while the last one is still on its way, so that a connection that
   * hangs without failing does not gather a query every interval.
   */
  private sayHereAgain(): void {
    if (this.herePending) return;
    this.herePending = true;
    void this.sendPresence('here').finally(() => (this.herePending = false));
  }

  /** `hello` or `here`, with this instance's interval: the others forget it after a few missed. */
  private sendPresence(word: 'hello' | 'here'): Promise<void> {
    return this.sendOnListenConnection(PRESENCE_CHANNEL, `${word}:${this.instance}:${PRESENCE_INTERVAL_MS}`);
  }

  /** Best effort, on the LISTEN connection only: a presence word means "I listen", so without it there is nothing to say. */
  private async sendOnListenConnection(channel: string, payload: string): Promise<void> {
    try {
      if (this.client) await this.onListenConnection(this.client, 'SELECT pg_notify($1, $2)', [channel, payload]);
    } catch (error) {
      this.logger.debug(`Could not send ${payload} (${(error as Error).message})`);
    }
  }

  /**
   * One query at a time on the LISTEN connection: wake-ups and presence words may be due together,
   * and pg queues a query sent while another runs only with a deprecation warning (pg 9 refuses it).
   */
  private onListenConnection(client: pg.Client, text: string, values: unknown[]): Promise<unknown> {
    const query = this.listenQueries.then(() => client.query(text, values));
    this.listenQueries = query.catch(() => undefined);
    return query;
  }

  /** Sends the wake-up NOTIFY now, or when the throttle allows; one at a time. */
  private scheduleSignal(): void {
    if (!this.signalWanted || this.signalSending || this.signalTimer) return;
    const wait = this.lastSignalAt + this.wakeSignalMs - performance.now();
    if (wait <= 0) {
      void this.sendSignal();
      return;
    }
    this.signalTimer = setTimeout(() => {
      this.signalTimer = undefined;
      if (!this.stopped) void this.sendSignal();
    }, wait);
    this.signalTimer.unref();
  }

  private async sendSignal(): Promise<void> {
    this.signalWanted = false;
    this.signalSending = true;
    this.lastSignalAt = performance.now();
    try {
      // On the LISTEN connection when it is up (no pooled connection taken from commands or runners).
      const payload = APPENDED + this.instance;
      if (this.client) await this.onListenConnection(this.client, 'SELECT pg_notify($1, $2)', [CHANNEL, payload]);
      else await this.dataSource.query('SELECT pg_notify($1, $2)', [CHANNEL, payload]);
    } catch (error) {
      // Best effort: the other instances' runners poll anyway.
      this.logger.debug(`Could not signal appended events (${(error as Error).message})`);
    } finally {
      this.signalSending = false;
      if (!this.stopped) this.scheduleSignal();
    }
  }

  /**
   * Resolves true on the next notification, false after `timeoutMs`, whichever comes first. Given the
   * `sequence` a reader saw before it last read, resolves true at once if a notification came since.
   */
  waitForAppend(timeoutMs: number, since?: number): Promise<boolean> {
    if (since !== undefined && since !== this.sequence) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (notified: boolean) => {
        clearTimeout(timer);
        this.off('appended', onAppended);
        resolve(notified);
      };
      const onAppended = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.once('appended', onAppended);
    });
  }

  /**
   * Sends a progress signal to every instance (this one included), on the projector's connection
   * (the primary: a replica cannot NOTIFY). Best effort: the waiters re-check on a timer anyway.
   */
  async signalProgress(signal: ProgressSignal, projection: string): Promise<void> {
    try {
      await this.dataSource.query('SELECT pg_notify($1, $2)', [PROGRESS_CHANNEL, `${signal}:${projection}`]);
    } catch (error) {
      this.logger.debug(`Could not signal ${signal} of ${projection} (${(error as Error).message})`);
    }
  }

  private onNotification(message: pg.Notification): void {
    if (message.channel === PRESENCE_CHANNEL) {
      this.onPresence(message.payload ?? '');
      return;
    }
    if (message.channel !== PROGRESS_CHANNEL) {
      // Our own wake-up: this process's readers were woken when the append committed.
      if (message.payload === APPENDED + this.instance) return;
      // Builds from before the presence channel say nothing else: take them to speak at its pace.
      if (message.payload?.startsWith(APPENDED)) this.heardFrom(message.payload.slice(APPENDED.length), PRESENCE_INTERVAL_MS);
      this.notify(message.payload === PROJECTIONS_CHANGED);
      return;
    }
    const [signal, projection] = (message.payload ?? '').split(/:(.*)/s);
    if (!projection) return;
    if (signal === 'waiting') this.emit('projectionWaiting', projection);
    else if (signal === 'advanced') this.emit('projectionAdvanced', projection);
  }

  /** `hello:<instance>:<interval ms>`, `here:<instance>:<interval ms>` or `bye:<instance>`. */
  private onPresence(payload: string): void {
    const [word, instance, interval] = payload.split(':');
    if (!instance || instance === this.instance) return;
    if (word === 'bye') {
      this.peers.left(instance);
      return;
    }
    const intervalMs = Number(interval);
    if ((word !== 'hello' && word !== 'here') || !Number.isFinite(intervalMs)) return;
    this.heardFrom(instance, intervalMs);
    if (word === 'hello') this.answerHello();
  }

  /**
   * A newcomer learns who already listens from the answers. One `here` per ANSWER_DELAY_MS answers
   * every hello of the meantime: answered one by one, a burst of hellos (forged: NOTIFY needs no
   * privilege) queued thousands of NOTIFYs on the LISTEN connection, ahead of the wake-ups (found in
   * review). A stopping instance answers no more: its `bye` is said.
   */
  private answerHello(): void {
    if (this.stopped || this.answerTimer) return;
    this.answerTimer = setTimeout(() => {
      this.answerTimer = undefined;
      if (!this.stopped) void this.sendPresence('here');
    }, ANSWER_DELAY_MS);
    this.answerTimer.unref();
  }

  private async connect(): Promise<void> {
    // The DataSource's own URL and startup options: the pinned search_path among them.
    const { url, extra } = this.dataSource.options as { url?: string; extra?: { options?: string } };
    const client = new pg.Client({ connectionString: url, options: extra?.options });
    client.on('notification', (message) => this.onNotification(message));
    client.on('error', (error) => {
      this.logger.warn(`LISTEN connection lost (${error.message}); runners keep polling`);
      this.scheduleReconnect(client);
    });
    client.on('end', () => this.scheduleReconnect(client));
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}; LISTEN ${PROGRESS_CHANNEL}; LISTEN ${PRESENCE_CHANNEL}`);
      // Who listens is heard again from the answers to this hello (whoever was heard before may have
      // left while this connection was down).
      this.peers.clear();
      this.listenQueries = Promise.resolve(); // nothing waits for a query of the connection that was lost
      this.client = client;
      if (!this.stopped) await this.sendPresence('hello');
      // Whatever was sent while no connection listened is lost: wake everyone, and have the
      // runners read their projection's row again (an operator's change may be among it).
      this.notify(true);
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
