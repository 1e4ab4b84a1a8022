import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { type Tracing, startTracing } from '../src/observability/tracing.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// The OpenTelemetry SDK started as main.ts starts it (startTracing), exporting to memory; the app as
// main.ts builds it. One transfer — POST /transfers, every step of the transfer process (which runs
// later, in a projection runner, woken by the log) and the projections applying its events — must
// be one trace: the trace context travels in the events' metadata, not in memory.

const exporter = new InMemorySpanExporter();
let tracing: Tracing;
let t: TestApp;

beforeAll(async () => {
  tracing = await startTracing({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
  await tracing?.stop();
});

const traceOf = (span: ReadableSpan) => span.spanContext().traceId;
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

async function spansUntil(predicate: (spans: ReadableSpan[]) => boolean): Promise<ReadableSpan[]> {
  const deadline = Date.now() + 30_000; // generous: the transfer process runs asynchronously, on a loaded machine
  for (;;) {
    const spans = exporter.getFinishedSpans();
    if (predicate(spans) || Date.now() > deadline) return spans;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function openAccount(owner: string): Promise<string> {
  const opened = await t.http.post('/accounts').send({ ownerName: owner, currency: 'EUR' });
  expect(opened.status).toBe(201);
  return opened.body.id as string;
}

it('is one trace from POST /transfers through every process-manager step and the projections of its events', async () => {
  const from = await openAccount('Trace from');
  const to = await openAccount('Trace to');
  expect((await t.http.post(`/accounts/${from}/deposits`).send({ amount: 500 })).status).toBe(200);

  const accepted = await t.http
    .post('/transfers')
    .set('X-Correlation-Id', `trace-${randomUUID()}`)
    .send({ fromAccountId: from, toAccountId: to, amount: 40 });
  expect(accepted.status).toBe(202);
  const transferId = accepted.body.id as string;

  const request = (await spansUntil((spans) => spans.some((span) => span.name === 'POST /transfers'))).find(
    (span) => span.name === 'POST /transfers',
  )!;
  expect(request.attributes).toMatchObject({ 'http.route': '/transfers', 'http.response.status_code': 202 });
  const traceId = traceOf(request);
  const inTrace = (spans: ReadableSpan[]) => spans.filter((span) => traceOf(span) === traceId);
  const names = (spans: ReadableSpan[]) => new Set(inTrace(spans).map((span) => span.name));
  const expected = [
    'POST /transfers',
    'command transfer',
    'command account',
    'event-store append',
    'transfer-process transfers.TransferRequested', // the process manager's steps
    'transfer-process transfers.SourceDebited',
    'transfers transfers.TransferRequested', // the transfer summary projection
    'transfers transfers.TransferCompleted',
    'account-summary batch',
    'account-transactions batch',
  ];
  const spans = await spansUntil((all) => expected.every((name) => names(all).has(name)));
  expect([...names(spans)]).toEqual(expect.arrayContaining(expected));

  // Every event of the transfer (and of its account legs) stored the context of the append that wrote it.
  const rows: Array<{ type: string; traceparent: string | null }> = await t.dataSource.query(
    `SELECT type, metadata->>'traceparent' AS traceparent FROM events WHERE data->>'transferId' = $1 ORDER BY position`,
    [transferId],
  );
  expect(rows.map((row) => row.type.replace(/^.*\./, ''))).toEqual(
    expect.arrayContaining(['TransferRequested', 'SourceDebited', 'TransferDebited', 'TargetCredited', 'TransferCompleted']),
  );
  const appends = new Map(
    inTrace(spans)
      .filter((span) => span.name === 'event-store append')
      .map((span) => [span.spanContext().spanId, span]),
  );
  for (const row of rows) {
    expect(row.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    expect(appends.has(row.traceparent!.split('-')[2])).toBe(true);
  }

  // The asynchronous hop: each process-manager step is a child of the append that stored its event.
  for (const step of inTrace(spans).filter((span) => span.name.startsWith('transfer-process '))) {
    expect(appends.has(parentOf(step)!)).toBe(true);
    expect(step.attributes['ledger.event.type']).toBe(step.name.replace('transfer-process ', ''));
  }
  // The commands of the process run inside its steps: their spans descend from a step's span.
  const byId = new Map(inTrace(spans).map((span) => [span.spanContext().spanId, span]));
  const debit = inTrace(spans).find(
    (span) =>
      span.name === 'command account' &&
      (span.attributes['ledger.events'] as string[] | undefined)?.some((type) => type.endsWith('.TransferDebited')),
  )!;
  expect(debit).toBeDefined();
  let ancestor: ReadableSpan | undefined = debit;
  while (ancestor && !ancestor.name.startsWith('transfer-process ')) ancestor = byId.get(parentOf(ancestor) ?? '');
  expect(ancestor?.name).toBe('transfer-process transfers.TransferRequested');
});

it("continues the caller's trace when the request carries a traceparent", async () => {
  const callerTrace = randomUUID().replaceAll('-', '');
  const opened = await t.http
    .post('/accounts')
    .set('traceparent', `00-${callerTrace}-00f067aa0ba902b7-01`)
    .send({ ownerName: 'Caller trace', currency: 'EUR' });
  expect(opened.status).toBe(201);
  const spans = await spansUntil((all) => all.some((span) => traceOf(span) === callerTrace && span.name === 'POST /accounts'));
  const request = spans.find((span) => traceOf(span) === callerTrace && span.name === 'POST /accounts')!;
  expect(parentOf(request)).toBe('00f067aa0ba902b7');
  const [row]: Array<{ traceparent: string }> = await t.dataSource.query(
    `SELECT metadata->>'traceparent' AS traceparent FROM events WHERE stream_id = $1`,
    [`account-${opened.body.id}`],
  );
  expect(row.traceparent.split('-')[1]).toBe(callerTrace);
});
