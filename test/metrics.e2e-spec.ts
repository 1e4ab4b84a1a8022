import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { accountsApi } from './support/accounts-api.js';
import { expectProblemAnswer } from './support/problem.js';
import { type Exposition, parsePrometheusText, valueOf } from './support/prometheus-text.js';
import { freePort } from './support/free-port.js';
import { connectSse, portOf } from './support/sse-client.js';
import { type TestApp, startTestApp } from './support/test-app.js';

/**
 * GET /metrics: read strictly as Prometheus reads it, and its numbers move exactly with the
 * requests made. Each test compares two scrapes around its own requests (the app is shared).
 */
let t: TestApp;
const api = accountsApi(() => t);

async function scrape(app: TestApp = t): Promise<Exposition> {
  const response = await app.anonymous.get('/metrics');
  expect(response.status).toBe(200);
  expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(response.text);
}

/** How each named metric moved between two scrapes. */
function moved(before: Exposition, after: Exposition, name: string, labels: Record<string, string> = {}): number {
  return valueOf(after, name, labels) - valueOf(before, name, labels);
}

beforeAll(async () => {
  t = await startTestApp();
  await t.app.listen(0, '127.0.0.1');
});
afterAll(async () => {
  await t?.close();
});

describe('GET /metrics', () => {
  it('answers without a token, in the text format, with every metric of the contract and the process metrics', async () => {
    const exposition = await scrape();
    expect(Object.fromEntries(exposition.types)).toEqual(
      expect.objectContaining({
        http_request_duration_seconds: 'histogram',
        ledger_commands_total: 'counter',
        ledger_event_store_append_duration_seconds: 'histogram',
        ledger_events_appended_total: 'counter',
        ledger_projection_lag_events: 'gauge',
        ledger_projection_lag_seconds: 'gauge',
        ledger_projection_status: 'gauge',
        ledger_live_feed_connections: 'gauge',
        ledger_idempotency_replays_total: 'counter',
        ledger_command_lane_wait_seconds: 'histogram',
        ledger_command_lanes_waiting: 'gauge',
        ledger_command_lanes_busy: 'gauge',
        process_cpu_user_seconds_total: 'counter',
        process_resident_memory_bytes: 'gauge',
        nodejs_eventloop_lag_seconds: 'gauge',
      }),
    );
  });

  it('a deposit: one command appended, one event, one append timed, one request under its route template', async () => {
    const account = await api.open();
    const before = await scrape();
    await api.deposit(account.id, 1050);
    const after = await scrape();
    expect(moved(before, after, 'ledger_commands_total', { command: 'DepositMoney', outcome: 'appended' })).toBe(1);
    expect(moved(before, after, 'ledger_events_appended_total')).toBe(1);
    expect(moved(before, after, 'ledger_event_store_append_duration_seconds_count')).toBe(1);
    const route = { method: 'POST', route: '/accounts/:id/deposits', status_code: '200' };
    expect(moved(before, after, 'http_request_duration_seconds_count', route)).toBe(1);
    expect(moved(before, after, 'http_request_duration_seconds_bucket', { ...route, le: '+Inf' })).toBe(1);
    // Never the raw URL: no series names an account.
    expect(after.samples.filter((sample) => Object.values(sample.labels).some((value) => value.includes(account.id)))).toEqual([]);
  });

  it('counts refusals by outcome, with nothing appended', async () => {
    const account = await api.openWith(100);
    const before = await scrape();
    expectProblemAnswer(await t.http.post(`/accounts/${account.id}/withdrawals`).send({ amount: 1000 }), 422, 'ACCOUNT_INSUFFICIENT_FUNDS');
    expectProblemAnswer(
      await t.http.post(`/accounts/${account.id}/deposits`).set('If-Match', '"1"').send({ amount: 1 }),
      412,
      'VERSION_MISMATCH',
    );
    expectProblemAnswer(await t.http.post(`/accounts/${randomUUID()}/deposits`).send({ amount: 1 }), 404, 'ACCOUNT_NOT_FOUND');
    const after = await scrape();
    expect(moved(before, after, 'ledger_commands_total', { command: 'WithdrawMoney', outcome: 'rejected' })).toBe(1);
    expect(moved(before, after, 'ledger_commands_total', { command: 'DepositMoney', outcome: 'precondition_failed' })).toBe(1);
    expect(moved(before, after, 'ledger_commands_total', { command: 'DepositMoney', outcome: 'rejected' })).toBe(1);
    expect(moved(before, after, 'ledger_commands_total', { command: 'DepositMoney', outcome: 'appended' })).toBe(0);
    expect(moved(before, after, 'ledger_events_appended_total')).toBe(0);
    expect(moved(before, after, 'http_request_duration_seconds_count', { route: '/accounts/:id/withdrawals', status_code: '422' })).toBe(1);
  });

  it('counts a command refused for the queue on its account (503 STREAM_BUSY) as busy, not as an error', async () => {
    const busy = await startTestApp({ COMMAND_LANE_MAX_WAIT_MS: '1' });
    try {
      const opened = await busy.http.post('/accounts').send({ ownerName: 'Busy', currency: 'EUR' });
      const before = await scrape(busy);
      const answers = await Promise.all(
        Array.from({ length: 100 }, () => busy.http.post(`/accounts/${opened.body.id as string}/deposits`).send({ amount: 1 })),
      );
      const after = await scrape(busy);
      const refused = answers.filter((answer) => answer.status === 503);
      expect(refused.length).toBeGreaterThan(0);
      for (const answer of refused) expect(answer.body.code).toBe('STREAM_BUSY');
      expect(moved(before, after, 'ledger_commands_total', { command: 'DepositMoney', outcome: 'busy' })).toBe(refused.length);
      expect(moved(before, after, 'ledger_commands_total', { command: 'DepositMoney', outcome: 'appended' })).toBe(100 - refused.length);
      expect(moved(before, after, 'ledger_commands_total', { command: 'DepositMoney', outcome: 'error' })).toBe(0);
      expect(moved(before, after, 'ledger_events_appended_total')).toBe(100 - refused.length);
    } finally {
      await busy.close();
    }
  });

  it('shows the commands queued behind a stuck one on an account, and how long they waited for their turn', async () => {
    const opened = await api.open();
    const before = await scrape();
    expect(valueOf(before, 'ledger_command_lanes_waiting')).toBe(0);
    expect(valueOf(before, 'ledger_command_lanes_busy')).toBe(0);
    // The log locked: the first deposit's append waits, and the 9 behind it wait for their turn.
    const blocker = t.dataSource.createQueryRunner();
    await blocker.connect();
    await blocker.startTransaction();
    await blocker.query('LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE');
    let answers: Promise<Array<{ status: number }>> | undefined;
    try {
      answers = Promise.all(Array.from({ length: 10 }, () => t.http.post(`/accounts/${opened.id}/deposits`).send({ amount: 1 })));
      let during = await scrape();
      for (let tries = 0; valueOf(during, 'ledger_command_lanes_waiting') < 9 && tries < 100; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        during = await scrape();
      }
      expect(valueOf(during, 'ledger_command_lanes_waiting')).toBe(9);
      expect(valueOf(during, 'ledger_command_lanes_busy')).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      await blocker.rollbackTransaction();
      await blocker.release();
    }
    expect((await answers!).map((answer) => answer.status)).toEqual(Array.from({ length: 10 }, () => 200));
    const after = await scrape();
    expect(valueOf(after, 'ledger_command_lanes_waiting')).toBe(0);
    expect(valueOf(after, 'ledger_command_lanes_busy')).toBe(0);
    // Every command took its turn once; the 9 behind the stuck head waited at least the 300 ms above.
    expect(moved(before, after, 'ledger_command_lane_wait_seconds_count')).toBe(10);
    expect(moved(before, after, 'ledger_command_lane_wait_seconds_sum')).toBeGreaterThan(9 * 0.3);
    expect(moved(before, after, 'ledger_command_lane_wait_seconds_bucket', { le: '0.25' })).toBeLessThanOrEqual(1);
  });

  it('times what no route matched (and what auth refused) without the raw URL', async () => {
    const before = await scrape();
    const path = `/no-such-route/${randomUUID()}`;
    expect((await t.http.get(path)).status).toBe(404);
    expect((await t.anonymous.get('/accounts')).status).toBe(401);
    const after = await scrape();
    expect(moved(before, after, 'http_request_duration_seconds_count', { method: 'GET', route: 'unmatched', status_code: '404' })).toBe(1);
    expect(moved(before, after, 'http_request_duration_seconds_count', { method: 'GET', route: '/accounts', status_code: '401' })).toBe(1);
    expect(after.samples.some((sample) => Object.values(sample.labels).some((value) => value.includes('no-such-route')))).toBe(false);
  });

  it('counts an Idempotency-Key replay once, and not as a second command', async () => {
    const account = await api.open();
    const key = randomUUID();
    const first = await t.http.post(`/accounts/${account.id}/deposits`).set('Idempotency-Key', key).send({ amount: 5 });
    expect(first.status).toBe(200);
    const before = await scrape();
    const replay = await t.http.post(`/accounts/${account.id}/deposits`).set('Idempotency-Key', key).send({ amount: 5 });
    expect(replay.headers['idempotent-replayed']).toBe('true');
    const after = await scrape();
    expect(moved(before, after, 'ledger_idempotency_replays_total')).toBe(1);
    expect(moved(before, after, 'ledger_events_appended_total')).toBe(0);
  });

  it('reports each projection’s status (1 for the current, 0 for the others) and lag, and the open live streams', async () => {
    const projection = (exposition: Exposition) => ({
      running: valueOf(exposition, 'ledger_projection_status', { projection: 'account-summary', status: 'running' }),
      failed: valueOf(exposition, 'ledger_projection_status', { projection: 'account-summary', status: 'failed' }),
      lagSeries: exposition.samples.filter(
        (sample) => sample.name.startsWith('ledger_projection_lag_') && sample.labels.projection === 'account-summary' && sample.value >= 0,
      ).length,
      liveConnections: valueOf(exposition, 'ledger_live_feed_connections'),
    });
    expect(projection(await scrape())).toEqual({ running: 1, failed: 0, lagSeries: 2, liveConnections: 0 });
    const live = await connectSse(portOf(t.app));
    try {
      expect(projection(await scrape())).toEqual({ running: 1, failed: 0, lagSeries: 2, liveConnections: 1 });
    } finally {
      live.close();
    }
  });

  it('rejects nothing a strict reader would: malformed expositions are caught by the reader itself', () => {
    expect(() => parsePrometheusText('x 1\n')).toThrow(/before its TYPE/);
    expect(() => parsePrometheusText('# TYPE x counter\nx{a="b} 1\n')).toThrow(/not a sample/);
    expect(() => parsePrometheusText('# TYPE x counter\nx one\n')).toThrow(/bad value/);
    expect(() => parsePrometheusText('# TYPE x gauge\nx Nanx\n')).toThrow(/bad value/);
    expect(parsePrometheusText('# TYPE x gauge\nx Nan\n').samples).toHaveLength(1); // Go's ParseFloat reads it
  });
});

describe('METRICS_PORT', () => {
  it('serves the metrics on a listener of their own and no longer on PORT, and closes it with the app', async () => {
    const port = await freePort();
    const own = await startTestApp({ METRICS_PORT: String(port) });
    try {
      expect((await own.http.get('/metrics')).status).toBe(404);
      const account = await own.http.post('/accounts').send({ ownerName: 'Ada', currency: 'EUR' });
      expect(account.status).toBe(201);
      const response = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      const exposition = parsePrometheusText(await response.text());
      expect(valueOf(exposition, 'ledger_commands_total', { command: 'OpenAccount', outcome: 'appended' })).toBe(1);
      expect((await fetch(`http://127.0.0.1:${port}/accounts`)).status).toBe(404);
    } finally {
      await own.close();
    }
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  });
});
