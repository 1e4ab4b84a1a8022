import { type IncomingMessage, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { type AppProcess, call, startAppProcess } from './support/app-process.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

// The production path of tracing: the compiled service with only the standard OTEL_* variables set
// starts the SDK and sends its spans to the OTLP/HTTP endpoint they name (here a local receiver
// that records what it gets; OTLP's default encoding, protobuf, is not decoded: the span names
// appear in it as plain strings).

let db: TestDatabase;
let service: AppProcess;
const received: Array<{ path: string; contentType: string | undefined; body: Buffer }> = [];
const receiver = createServer((request: IncomingMessage, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    received.push({ path: request.url ?? '', contentType: request.headers['content-type'], body: Buffer.concat(chunks) });
    response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
  });
});

beforeAll(async () => {
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  db = await createTestDatabase();
  service = await startAppProcess(db.url, {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
    OTEL_BSP_SCHEDULE_DELAY: '100',
    OTEL_SERVICE_NAME: 'ledger-under-test',
  });
});
afterAll(async () => {
  await service?.stop();
  await db?.drop();
  await new Promise((resolve) => receiver.close(resolve));
});

it('exports the spans of a request to the OTLP endpoint named by OTEL_EXPORTER_OTLP_ENDPOINT', async () => {
  expect((await call(service.url, 'POST', '/accounts', { ownerName: 'Exported', currency: 'EUR' })).status).toBe(201);
  const deadline = Date.now() + 30_000; // generous: batches leave every 100 ms, on a loaded machine
  const exported = () =>
    Buffer.concat(received.filter((request) => request.path === '/v1/traces').map((request) => request.body)).toString('latin1');
  while (!(exported().includes('POST /accounts') && exported().includes('event-store append')) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(exported()).toContain('POST /accounts');
  expect(exported()).toContain('command account');
  expect(exported()).toContain('event-store append');
  expect(exported()).toContain('ledger-under-test');
  expect(received.find((request) => request.path === '/v1/traces')?.contentType).toBe('application/x-protobuf');
  expect(service.output()).toContain('Tracing on');
});
