import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { EventNotifier } from '../src/event-sourcing/index.js';
import { eventually } from './support/projection-fixtures.js';
import { type TestApp, startTestApp } from './support/test-app.js';
import { listenTo } from './support/listener.js';

/**
 * From the hostile review of f5a0304 (watched failing then: `here` after `bye`): a stopping instance
 * still answered a `hello` with `here`. A newcomer's hello that reaches it while its `bye` is on the wire (a rolling deploy:
 * the new instance starts while the old one stops) makes it send `here` AFTER its `bye`, so every
 * other instance re-learns it and keeps sending wake-up NOTIFYs for a gone instance for five of its
 * intervals (10 s), which is what the bye was for. Here the hello is made to reach it during stop()
 * by holding its LISTEN socket's reads for a moment (network latency), nothing else.
 */
describe('review: a stopping instance answers a hello after its bye', () => {
  const QUIET = { PROJECTION_POLL_INTERVAL_MS: '60000', PROJECTION_LEASE_TTL_MS: '600000' };
  let writer: TestApp;
  let leaving: TestApp;
  let listener: pg.Client;
  const heard: Array<{ channel: string; payload: string }> = [];
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  interface Internals {
    instance: string;
    client?: { connection: { stream: NodeJS.ReadableStream } };
    peers: { any(): boolean };
  }

  beforeAll(async () => {
    writer = await startTestApp({ ...QUIET, PROJECTIONS_ENABLED: 'false', PROJECTION_WAKE_SIGNAL_MS: '20' });
    leaving = await startTestApp({ ...QUIET, PROJECTIONS_ENABLED: 'false' }, writer.database);
    listener = await listenTo(writer.database.url, ['events_appended', 'ledger_instances'], (message) =>
      heard.push({ channel: message.channel, payload: message.payload ?? '' }),
    );
  }, 60_000);
  afterAll(async () => {
    await listener?.end();
    await leaving?.close();
    await writer?.close();
  });

  it('says nothing after its bye, and the others stop signalling for it', async () => {
    const notifier = leaving.app.get(EventNotifier) as unknown as Internals & { stop(): Promise<void> };
    const writerPeers = (writer.app.get(EventNotifier) as unknown as Internals).peers;
    const id = notifier.instance;
    await eventually('the writer to hear the leaving instance', async () => (writerPeers.any() ? true : undefined));
    const stream = notifier.client!.connection.stream;
    stream.pause(); // its reads are late for a moment
    await listener.query(`SELECT pg_notify('ledger_instances', 'hello:newcomer:2000')`);
    await pause(100);
    const stopping = notifier.stop();
    await pause(50);
    stream.resume();
    await stopping;
    // The newcomer (played by the listener) leaves too, so only the stopped instance could be heard.
    await listener.query(`SELECT pg_notify('ledger_instances', 'bye:newcomer')`);
    await pause(300);
    const words = heard.filter((message) => message.channel === 'ledger_instances').map((message) => message.payload);
    const byeAt = words.indexOf(`bye:${id}`);
    expect(byeAt).toBeGreaterThanOrEqual(0);
    const from = heard.length;
    await writer.http.post('/accounts').send({ ownerName: 'After the bye', currency: 'EUR' }).expect(201);
    await pause(300);
    const wakeUps = heard.slice(from).filter((message) => message.payload.startsWith('appended:'));
    expect(words.slice(byeAt + 1).filter((word) => word.includes(id))).toEqual([]);
    expect(wakeUps).toEqual([]);
  }, 60_000);
});
