import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { EventNotifier } from '../src/event-sourcing/index.js';
import { eventually } from './support/projection-fixtures.js';
import { type TestApp, startTestApp } from './support/test-app.js';
import { listenTo } from './support/listener.js';

/**
 * An instance sends its wake-up NOTIFY only while another instance listens
 * (src/event-sourcing/listening-peers.ts): a lone instance wakes its own readers in process, and the
 * NOTIFY cost it a round trip and an echo for nearly every append. The instances say they listen on
 * `ledger_instances`; this file plays other instances with a plain connection where it needs one to
 * say something a real instance would not (a short interval, silence after a hello).
 */
describe('wake-up NOTIFYs go out only while another instance listens', () => {
  // Only a wake-up can make the reader's projections advance within these tests (see append-wake).
  const QUIET = { PROJECTION_POLL_INTERVAL_MS: '60000', PROJECTION_LEASE_TTL_MS: '600000' };
  const SIGNAL_MS = 20;
  /** Long enough for a throttled NOTIFY to have left (its throttle is SIGNAL_MS). */
  const SETTLE_MS = 400;
  let writer: TestApp;
  let listener: pg.Client;
  const heard: Array<{ channel: string; payload: string }> = [];

  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const wakeUpsSince = (from: number) => heard.slice(from).filter((message) => message.payload.startsWith('appended:'));
  const openAccount = async (name: string): Promise<string> =>
    (await writer.http.post('/accounts').send({ ownerName: name, currency: 'EUR' }).expect(201)).body.id as string;
  const say = (payload: string) => listener.query(`SELECT pg_notify('ledger_instances', $1)`, [payload]);

  beforeAll(async () => {
    writer = await startTestApp({ ...QUIET, PROJECTIONS_ENABLED: 'false', PROJECTION_WAKE_SIGNAL_MS: String(SIGNAL_MS) });
    // A plain LISTEN says nothing on the presence channel: this connection is not an instance.
    listener = await listenTo(writer.database.url, ['events_appended', 'ledger_instances'], (message) =>
      heard.push({ channel: message.channel, payload: message.payload ?? '' }),
    );
  });
  afterAll(async () => {
    await listener?.end();
    await writer?.close();
  });

  it('a lone instance sends no wake-up NOTIFY for its appends', async () => {
    const from = heard.length;
    for (let index = 0; index < 5; index++) await openAccount(`Alone ${index}`);
    await pause(SETTLE_MS);
    expect(wakeUpsSince(from)).toEqual([]);
  });

  it("answers another instance's hello, sends it a wake-up at once, and signals its appends from then on", async () => {
    const from = heard.length;
    await say('hello:peer-one:60000');
    // The answer tells the newcomer who already listens; the wake-up covers the appends made before.
    const answer = await eventually('the answer to the hello', async () =>
      heard.slice(from).find((message) => message.channel === 'ledger_instances' && message.payload.startsWith('here:')),
    );
    expect(answer.payload).toMatch(/^here:[0-9a-f-]{36}:\d+$/);
    await eventually('the wake-up for the newcomer', async () => (wakeUpsSince(from).length > 0 ? true : undefined));
    await pause(SETTLE_MS);
    const afterHello = heard.length;
    await openAccount('Heard');
    await eventually('the wake-up for an append', async () => (wakeUpsSince(afterHello).length > 0 ? true : undefined));
  });

  it('stops signalling an instance that said bye', async () => {
    await say('bye:peer-one');
    await pause(SETTLE_MS);
    const from = heard.length;
    await openAccount('After bye');
    await pause(SETTLE_MS);
    expect(wakeUpsSince(from)).toEqual([]);
  });

  it('forgets an instance that stopped speaking (killed without its bye) after five of its intervals', async () => {
    const from = heard.length;
    await say('hello:peer-two:200'); // forgotten 1 s after its last word
    await eventually('the wake-up for peer-two', async () => (wakeUpsSince(from).length > 0 ? true : undefined));
    await pause(SIGNAL_MS * 3);
    const whileHeard = heard.length;
    await openAccount('Peer two still heard');
    await eventually('a wake-up while peer-two is remembered', async () => (wakeUpsSince(whileHeard).length > 0 ? true : undefined));
    await pause(1200);
    const forgotten = heard.length;
    await openAccount('Peer two forgotten');
    await pause(SETTLE_MS);
    expect(wakeUpsSince(forgotten)).toEqual([]);
  });

  it('takes a wake-up of an instance built before the presence channel as a word from it', async () => {
    const from = heard.length;
    await listener.query(`SELECT pg_notify('events_appended', 'appended:older-build')`);
    await eventually('the wake-up for the older build', async () =>
      wakeUpsSince(from).find((message) => message.payload !== 'appended:older-build'),
    );
    await say('bye:older-build');
    await pause(SETTLE_MS);
  });

  it("wakes a real second instance's runners from its hello on, and stops when it closes", async () => {
    const reader = await startTestApp(QUIET, writer.database);
    try {
      const id = await openAccount('Read elsewhere');
      const summary = await eventually(
        'the reader instance to project the opening (its poll is a minute away)',
        async () => {
          const answer = await reader.http.get(`/accounts/${id}`);
          return answer.status === 200 ? answer.body : undefined;
        },
        15_000,
      );
      expect(summary).toMatchObject({ id, balance: 0 });
    } finally {
      await reader.close(); // says bye
    }
    await pause(SETTLE_MS);
    const from = heard.length;
    await openAccount('Reader gone');
    await pause(SETTLE_MS);
    expect(wakeUpsSince(from)).toEqual([]);
  });

  it('signals as before while its own LISTEN connection is down (it cannot hear anyone then)', async () => {
    const notifier = writer.app.get(EventNotifier) as unknown as { client?: { processID?: number } };
    const pid = await eventually('the LISTEN connection', async () => notifier.client?.processID);
    await listener.query('SELECT pg_terminate_backend($1)', [pid]);
    await eventually('the LISTEN connection to be seen lost', async () => (notifier.client === undefined ? true : undefined));
    const from = heard.length;
    await openAccount('While deaf');
    await eventually('the wake-up sent while deaf', async () => (wakeUpsSince(from).length > 0 ? true : undefined));
    // Back, it hears nobody again (the others would answer its hello), so it goes quiet again.
    await eventually('a new LISTEN connection', async () => {
      const now = notifier.client?.processID;
      return now !== undefined && now !== pid ? now : undefined;
    });
    await pause(SETTLE_MS);
    const after = heard.length;
    await openAccount('Alone again');
    await pause(SETTLE_MS);
    expect(wakeUpsSince(after)).toEqual([]);
  });
});
