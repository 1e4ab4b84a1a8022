import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { eventually } from './support/projection-fixtures.js';
import { type TestApp, startTestApp } from './support/test-app.js';
import { listenTo } from './support/listener.js';

/**
 * From the hostile review of f5a0304 (watched failing then: 40,007 answers, the other instance saw the
 * append after 7.2 s): every `hello` heard on ledger_instances was answered with its own `here`
 * NOTIFY on the LISTEN connection, the very connection that carries the wake-up NOTIFYs. A burst of
 * hellos (one statement from any role that may connect: NOTIFY needs no privilege) queued one round
 * trip per hello there, ahead of the wake-ups for real appends. Now one `here` answers every hello
 * of a 20 ms wait.
 */
describe('review: a burst of hellos on ledger_instances', () => {
  const QUIET = { PROJECTION_POLL_INTERVAL_MS: '60000', PROJECTION_LEASE_TTL_MS: '600000' };
  let writer: TestApp;
  let reader: TestApp;
  let listener: pg.Client;
  const heard: Array<{ channel: string; payload: string; at: number }> = [];

  beforeAll(async () => {
    writer = await startTestApp({ ...QUIET, PROJECTIONS_ENABLED: 'false' });
    reader = await startTestApp(QUIET, writer.database);
    listener = await listenTo(writer.database.url, ['events_appended', 'ledger_instances'], (message) =>
      heard.push({ channel: message.channel, payload: message.payload ?? '', at: performance.now() }),
    );
  }, 60_000);
  afterAll(async () => {
    await listener?.end();
    await reader?.close();
    await writer?.close();
  });

  it("does not hold the writer's wake-up for the other instance behind the answers", async () => {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const from = heard.length;
    // Each ghost states a 10 ms interval: by the rules it is forgotten 50 ms later.
    await listener.query(`SELECT pg_notify('ledger_instances', 'hello:ghost-' || i || ':10') FROM generate_series(1, 20000) AS i`);
    const started = performance.now();
    const id = (await writer.http.post('/accounts').send({ ownerName: 'Behind the hellos', currency: 'EUR' }).expect(201)).body
      .id as string;
    const posted = performance.now() - started;
    await eventually(
      'the reader instance to project the opening (its poll is a minute away)',
      async () => ((await reader.http.get(`/accounts/${id}`)).status === 200 ? true : undefined),
      30_000,
    );
    const took = performance.now() - started;
    const answers = heard.slice(from).filter((message) => message.payload.startsWith('here:')).length;
    expect(answers).toBeLessThan(100); // two instances, one answer per 20 ms wait each
    expect(took - posted).toBeLessThan(1000); // the default poll: a wake-up slower than it is worth nothing
  }, 60_000);
});
