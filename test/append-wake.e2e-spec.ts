import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { EventNotifier } from '../src/event-sourcing/index.js';
import { eventually } from './support/projection-fixtures.js';
import { type TestApp, startTestApp } from './support/test-app.js';
import { listenTo } from './support/listener.js';

/**
 * How the readers of the log learn that events were appended, now that no NOTIFY runs inside the
 * append's transaction (migration 017): the appending instance wakes its own readers after COMMIT and
 * the other instances with a throttled NOTIFY of its own (src/event-sourcing/event-notifier.ts).
 */
describe('waking the log readers after an append commits', () => {
  // Polls once a minute: within these tests only a wake-up can make the projection advance. A runner
  // waits at most a third of its lease too, so the lease is long (with the default 10 s lease it
  // polled every 3.3 s, and the cross-instance test passed without any NOTIFY; found in review).
  const QUIET = { PROJECTION_POLL_INTERVAL_MS: '60000', PROJECTION_LEASE_TTL_MS: '600000' };
  const SIGNAL_MS = 200;
  let writer: TestApp;
  let reader: TestApp;
  let listener: pg.Client;
  const signals: Array<{ payload: string; at: number }> = [];

  beforeAll(async () => {
    // The writer runs no projection; the reader runs them all and serves the reads.
    writer = await startTestApp({ ...QUIET, PROJECTIONS_ENABLED: 'false', PROJECTION_WAKE_SIGNAL_MS: String(SIGNAL_MS) });
    reader = await startTestApp(QUIET, writer.database);
    listener = await listenTo(writer.database.url, ['events_appended'], (message) =>
      signals.push({ payload: message.payload ?? '', at: performance.now() }),
    );
  });
  afterAll(async () => {
    await listener?.end();
    await reader?.close();
    await writer?.close();
  });

  it('sends no NOTIFY from inside an append: no trigger on events calls pg_notify', async () => {
    const notifying = await writer.dataSource.query<Array<{ tgname: string }>>(
      `SELECT t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
       WHERE t.tgrelid = 'events'::regclass AND p.prosrc ILIKE '%notify%'`,
    );
    expect(notifying).toEqual([]);
  });

  it("wakes the other instance's projection runner, which polls only once a minute", async () => {
    const opened = await writer.http.post('/accounts').send({ ownerName: 'Woken', currency: 'EUR' }).expect(201);
    const id = opened.body.id as string;
    const summary = await eventually(
      'the reader instance to project the opening',
      async () => {
        const answer = await reader.http.get(`/accounts/${id}`);
        return answer.status === 200 ? answer.body : undefined;
      },
      15_000,
    );
    expect(summary).toMatchObject({ id, balance: 0 });
    // The signal carries the writer's instance, so that the writer ignores its own.
    expect(signals.map((signal) => signal.payload)).toContainEqual(expect.stringMatching(/^appended:/));
  });

  it("wakes the appending instance's own readers at once, before (and without) any NOTIFY", async () => {
    const notifier = writer.app.get(EventNotifier);
    const before = notifier.sequence;
    const signalsBefore = signals.length;
    await writer.http.post('/accounts').send({ ownerName: 'Local', currency: 'EUR' }).expect(201);
    await eventually('the local wake-up', async () => (notifier.sequence > before ? true : undefined), 5_000, 1);
    // Its own NOTIFY, when it comes, does not count twice: the payload names this instance.
    const sequenceAfterLocalWake = notifier.sequence;
    await eventually('the NOTIFY', async () => (signals.length > signalsBefore ? true : undefined), 5_000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(notifier.sequence).toBe(sequenceAfterLocalWake);
  });

  it('sends at most one NOTIFY per PROJECTION_WAKE_SIGNAL_MS under a burst of appends', async () => {
    await new Promise((resolve) => setTimeout(resolve, SIGNAL_MS * 2)); // the throttle of earlier tests has passed
    const first = signals.length;
    const started = performance.now();
    const opened = await Promise.all(
      Array.from({ length: 60 }, (_, index) => writer.http.post('/accounts').send({ ownerName: `Burst ${index}`, currency: 'EUR' })),
    );
    expect(opened.map((answer) => answer.status)).toEqual(opened.map(() => 201));
    await new Promise((resolve) => setTimeout(resolve, SIGNAL_MS * 2)); // the trailing one
    const elapsed = performance.now() - started;
    const sent = signals.slice(first).filter((signal) => signal.payload.startsWith('appended:')).length;
    expect(sent).toBeGreaterThanOrEqual(1);
    // One may leave at the start, then one per interval at most (+1 for timer slack).
    expect(sent).toBeLessThanOrEqual(Math.ceil(elapsed / SIGNAL_MS) + 2);
    expect(sent).toBeLessThan(60);
  });

  it('signals an append that commits while the throttle holds, once the interval has passed (the trailing send)', async () => {
    await new Promise((resolve) => setTimeout(resolve, SIGNAL_MS * 2));
    const first = signals.length;
    await writer.http.post('/accounts').send({ ownerName: 'Leading', currency: 'EUR' }).expect(201);
    await eventually('the leading signal', async () => (signals.length > first ? true : undefined), 5_000, 1);
    const leadingAt = signals[first].at;
    // Committed within the interval after the leading signal: it must not be left unsignalled.
    await writer.http.post('/accounts').send({ ownerName: 'Trailing', currency: 'EUR' }).expect(201);
    const trailing = await eventually('the trailing signal', async () => signals[first + 1], 5_000, 1);
    expect(trailing.at - leadingAt).toBeGreaterThanOrEqual(SIGNAL_MS * 0.8);
  });
});
