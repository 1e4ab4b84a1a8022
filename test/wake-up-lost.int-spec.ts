import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { EventNotifier } from '../src/event-sourcing/index.js';
import { type AppProcess, call, startAppProcess } from './support/app-process.js';
import { eventually } from './support/projection-fixtures.js';
import { type TestApp, startTestApp } from './support/test-app.js';
import { listenTo } from './support/listener.js';

/**
 * Wake-ups that never arrive (issue 14 moved them out of the append's transaction, see
 * src/event-sourcing/event-notifier.ts). A wake-up is only a shortcut: the instance that runs the
 * projections must still apply every committed event, whether the appending instance died between
 * its COMMIT and its NOTIFY, or the runner's own LISTEN connection dropped.
 *
 * Runners wait at most min(PROJECTION_POLL_INTERVAL_MS, PROJECTION_LEASE_TTL_MS / 3) between reads
 * when nothing wakes them: both are set here so that the wait is known.
 */

const balanceOn = async (reader: TestApp, id: string): Promise<number | undefined> => {
  const answer = await reader.http.get(`/accounts/${id}`);
  return answer.status === 200 ? (answer.body.balance as number) : undefined;
};

describe('an instance killed between the COMMIT of an append and its wake-up NOTIFY', () => {
  const POLL_MS = 1500;
  const SIGNAL_MS = 1000; // the writer's throttle: its second append's NOTIFY waits up to this long
  let reader: TestApp;
  let writer: AppProcess | undefined;
  let listener: pg.Client;
  const signals: Array<{ payload: string; at: number }> = [];

  beforeAll(async () => {
    reader = await startTestApp({ PROJECTION_POLL_INTERVAL_MS: String(POLL_MS), PROJECTION_LEASE_TTL_MS: '60000' });
    writer = await startAppProcess(reader.database.url, {
      PROJECTIONS_ENABLED: 'false',
      PROJECTION_WAKE_SIGNAL_MS: String(SIGNAL_MS),
    });
    listener = await listenTo(reader.database.url, ['events_appended'], (message) =>
      signals.push({ payload: message.payload ?? '', at: performance.now() }),
    );
  }, 60_000);
  afterAll(async () => {
    await writer?.kill();
    await listener?.end();
    await reader?.close();
  });

  it('the other instance still applies the append, by its poll', async () => {
    const opened = await call(writer!.url, 'POST', '/accounts', { ownerName: 'Killed writer', currency: 'EUR' });
    expect(opened.status).toBe(201);
    const id = opened.body.id as string;
    // The opening's NOTIFY leaves at once (the throttle was open); the next append's is held back.
    const leading = await eventually('the leading wake-up NOTIFY', async () => signals.find((s) => s.payload.startsWith('appended:')));
    const depositSentAt = performance.now();
    expect(depositSentAt - leading.at).toBeLessThan(SIGNAL_MS); // else the deposit's NOTIFY would leave at once
    const deposited = await call(writer!.url, 'POST', `/accounts/${id}/deposits`, { amount: 700 });
    expect(deposited.status).toBe(200);
    await writer!.kill(); // SIGKILL: the deposit committed, its throttled NOTIFY is never sent
    writer = undefined;

    expect(
      await eventually(
        'the reader instance to apply the deposit',
        async () => ((await balanceOn(reader, id)) === 700 ? true : undefined),
        30_000,
      ),
    ).toBe(true);
    // The precondition of the test: no wake-up announced the deposit (it was the poll).
    await new Promise((resolve) => setTimeout(resolve, SIGNAL_MS + 200));
    expect(signals.filter((signal) => signal.payload.startsWith('appended:') && signal.at > depositSentAt)).toEqual([]);
  }, 90_000);

  it('an instance stopped gracefully (SIGTERM) still announces the appends its throttle was holding back', async () => {
    const stopping = await startAppProcess(reader.database.url, {
      PROJECTIONS_ENABLED: 'false',
      PROJECTION_WAKE_SIGNAL_MS: String(SIGNAL_MS),
    });
    try {
      const from = signals.length;
      const opened = await call(stopping.url, 'POST', '/accounts', { ownerName: 'Stopped writer', currency: 'EUR' });
      expect(opened.status).toBe(201);
      const leading = await eventually('the leading wake-up NOTIFY', async () =>
        signals.slice(from).find((s) => s.payload.startsWith('appended:')),
      );
      const depositSentAt = performance.now();
      expect(depositSentAt - leading.at).toBeLessThan(SIGNAL_MS);
      expect((await call(stopping.url, 'POST', `/accounts/${opened.body.id as string}/deposits`, { amount: 5 })).status).toBe(200);
      await stopping.stop();
      // Shutting down is no reason to leave the others waiting for their poll: the held-back NOTIFY goes before the process ends.
      const announced = () => signals.filter((signal) => signal.payload.startsWith('appended:') && signal.at > depositSentAt);
      await eventually('the held-back NOTIFY', async () => (announced().length > 0 ? true : undefined), 3_000).catch(() => undefined);
      expect(announced()).toHaveLength(1);
    } finally {
      await stopping.kill();
    }
  }, 90_000);
});

describe("a runner's LISTEN connection dropped", () => {
  // No poll within these tests (a minute, and a third of a 10-minute lease): only a wake-up moves the runners.
  const QUIET = { PROJECTION_POLL_INTERVAL_MS: '60000', PROJECTION_LEASE_TTL_MS: '600000' };
  let reader: TestApp;
  let writer: AppProcess;

  beforeAll(async () => {
    reader = await startTestApp(QUIET);
    writer = await startAppProcess(reader.database.url, { ...QUIET, PROJECTIONS_ENABLED: 'false' });
  }, 60_000);
  afterAll(async () => {
    await writer?.kill();
    await reader?.close();
  });

  const listenPid = () => (reader.app.get(EventNotifier) as unknown as { client?: { processID?: number } }).client?.processID;

  it('an append committed while it was down, and one after it was re-established, both wake the runners', async () => {
    const opened = await call(writer.url, 'POST', '/accounts', { ownerName: 'Listener', currency: 'EUR' });
    expect(opened.status).toBe(201);
    const id = opened.body.id as string;
    await eventually('the opening to be applied', async () => ((await balanceOn(reader, id)) === 0 ? true : undefined), 15_000);

    const before = await eventually('the LISTEN connection', async () => listenPid());
    await reader.dataSource.query('SELECT pg_terminate_backend($1)', [before]);
    // Committed while nobody listens in the reader: its NOTIFY is lost.
    expect((await call(writer.url, 'POST', `/accounts/${id}/deposits`, { amount: 100 })).status).toBe(200);
    await eventually(
      'the deposit made while LISTEN was down to be applied',
      async () => ((await balanceOn(reader, id)) === 100 ? true : undefined),
      15_000,
    );

    await eventually('a new LISTEN connection', async () => {
      const pid = listenPid();
      return pid !== undefined && pid !== before ? pid : undefined;
    });
    expect((await call(writer.url, 'POST', `/accounts/${id}/deposits`, { amount: 20 })).status).toBe(200);
    await eventually(
      'the deposit made after LISTEN was re-established to be applied',
      async () => ((await balanceOn(reader, id)) === 120 ? true : undefined),
      15_000,
    );
  }, 90_000);
});
