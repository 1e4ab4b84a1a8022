import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import pg from 'pg';
import { type AppProcess, startAppProcess } from './support/app-process.js';
import { TEST_SUBJECT, testToken } from './support/auth.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

// The compiled service as it runs (dist/src/main.js), with LOG_FORMAT=json: every line it writes,
// standard output and error alike, must be one JSON object; the access line and the lines of the
// work a request starts — its command, the transfer process's steps and their commands, which run
// later in a projection runner — carry the correlation id; no credential ever shows.

let db: TestDatabase;
let service: AppProcess;
const token = testToken();
let databasePassword: string;

beforeAll(async () => {
  db = await createTestDatabase();
  databasePassword = decodeURIComponent(new URL(db.url).password);
  service = await startAppProcess(db.url, { LOG_FORMAT: 'json', LOG_LEVEL: 'debug' });
});
afterAll(async () => {
  await service?.stop();
  await db?.drop();
});

interface LogLine {
  readonly level: string;
  readonly time: string;
  readonly msg: string;
  readonly [field: string]: unknown;
}

/** Every line written so far, parsed: a line that is not one JSON object fails the test. */
function lines(): LogLine[] {
  return service
    .output()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        throw new Error(`not a JSON line: ${line}`);
      }
      expect(parsed).toEqual(expect.objectContaining({ level: expect.any(String), time: expect.any(String), msg: expect.any(String) }));
      expect(Number.isNaN(Date.parse((parsed as LogLine).time))).toBe(false);
      return parsed as LogLine;
    });
}

async function linesUntil(predicate: (found: LogLine[]) => boolean): Promise<LogLine[]> {
  const deadline = Date.now() + 30_000; // generous: the transfer process runs asynchronously, on a loaded machine
  for (;;) {
    const found = lines();
    if (predicate(found) || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const response = await fetch(`${service.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

it('writes one JSON object per line; the access line and the command lines carry the request correlation id', async () => {
  const source = await post('/accounts', { ownerName: 'Logs', currency: 'EUR' });
  const correlationId = `deposit-${randomUUID()}`;
  const deposit = await post(`/accounts/${source.body.id}/deposits`, { amount: 100 }, { 'X-Correlation-Id': correlationId });
  expect(deposit.status).toBe(200);

  const found = await linesUntil((all) => all.some((line) => line.correlationId === correlationId && line.route !== undefined));
  const access = found.filter((line) => line.correlationId === correlationId && line.route !== undefined);
  expect(access).toEqual([
    expect.objectContaining({
      level: 'info',
      method: 'POST',
      route: '/accounts/:id/deposits',
      path: `/accounts/${source.body.id}/deposits`,
      status: 200,
      durationMs: expect.any(Number),
      correlationId,
      actor: TEST_SUBJECT,
    }),
  ]);
  // nothing of a line written during the request (its logger context) bleeds into the access line
  expect(access[0].context).toBeUndefined();
  const command = found.filter((line) => line.context === 'CommandRunner' && line.msg.includes(`account-${source.body.id}@2: appended`));
  expect(command).toEqual([expect.objectContaining({ level: 'debug', correlationId })]);
});

it("carries the transfer's correlation id on the process manager's lines and on its commands' lines", async () => {
  const from = await post('/accounts', { ownerName: 'From', currency: 'EUR' });
  const to = await post('/accounts', { ownerName: 'To', currency: 'EUR' });
  expect((await post(`/accounts/${from.body.id}/deposits`, { amount: 500 })).status).toBe(200);
  const correlationId = `transfer-${randomUUID()}`;
  const accepted = await post(
    '/transfers',
    { fromAccountId: from.body.id, toAccountId: to.body.id, amount: 40 },
    { 'X-Correlation-Id': correlationId },
  );
  expect(accepted.status).toBe(202);

  const appendedTypes = (all: LogLine[]) =>
    all
      .filter(
        (line) =>
          (line.context === 'CommandRunner' || line.context === 'TransferProcessManager') &&
          line.correlationId === correlationId &&
          line.msg.includes(': appended '),
      )
      .flatMap((line) => line.msg.replace(/^.*: appended (.*) at \d+$/, '$1').split(', '));
  const found = await linesUntil((all) => appendedTypes(all).includes('TransferCompleted'));
  const process = found.filter((line) => line.context === 'TransferProcessManager' && line.msg.includes(accepted.body.id));
  expect(process.length).toBeGreaterThanOrEqual(2);
  for (const line of process) {
    // the event that woke the manager up locates the line
    expect(line).toEqual(expect.objectContaining({ correlationId, handler: 'transfer-process', eventType: expect.any(String) }));
  }
  expect(appendedTypes(found).sort()).toEqual(
    [
      'SourceDebited',
      'TargetCredited',
      'TransferCompleted',
      'TransferCredited',
      'TransferDebited',
      'TransferRequested',
      'TransferSettled',
    ].sort(),
  );
  expect(found.filter((line) => line.correlationId === correlationId && line.route === '/transfers')).toEqual([
    expect.objectContaining({ method: 'POST', status: 202, actor: TEST_SUBJECT }),
  ]);
});

it('never writes a bearer token, an Authorization value or the database password', async () => {
  const forged = `${token.slice(0, -8)}AAAAAAAA`; // a token that fails verification, in an Authorization header
  const refused = await fetch(`${service.url}/accounts`, { headers: { authorization: `Bearer ${forged}` } });
  expect(refused.status).toBe(401);
  const basic = await fetch(`${service.url}/accounts`, { headers: { authorization: 'Basic dXNlcjpodW50ZXIy' } });
  expect(basic.status).toBe(401);
  const malformed = await fetch(`${service.url}/accounts`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: '{"ownerName":',
  });
  expect(malformed.status).toBe(400);

  const unknown = await fetch(`${service.url}/no-such-path`, { headers: { authorization: `Bearer ${token}` } });
  expect(unknown.status).toBe(404);
  const found = await linesUntil(
    (all) =>
      all.filter((line) => line.status === 401).length >= 2 &&
      all.some((line) => line.status === 400) &&
      all.some((line) => line.status === 404),
  );
  expect(found.filter((line) => line.status === 404)).toEqual([expect.objectContaining({ route: null, path: '/no-such-path' })]);
  expect(found.filter((line) => line.status === 401)).toEqual([
    expect.objectContaining({ route: '/accounts', actor: null }),
    expect.objectContaining({ route: '/accounts', actor: null }),
  ]);
  // refused before routing (body parsing), and logged all the same
  expect(found.filter((line) => line.status === 400)).toEqual([expect.objectContaining({ method: 'POST', path: '/accounts' })]);
  const output = service.output();
  for (const secret of [token, forged, token.split('.')[2], forged.split('.')[2], 'dXNlcjpodW50ZXIy', 'Bearer', 'Basic ']) {
    expect(output).not.toContain(secret);
  }
  expect(databasePassword).not.toBe(''); // the test server's URL has one (embedded or TEST_DATABASE_URL)
  expect(output).not.toContain(`:${databasePassword}@`);
  expect(output).toContain(':***@'); // the database URL's password, masked in the start-up line
});

it('starts no tracing without an OTEL_* exporter: no trace context is stored in events', async () => {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    const { rows } = await client.query<{ events: string; traced: string }>(
      `SELECT count(*) AS events, count(*) FILTER (WHERE metadata ? 'traceparent') AS traced FROM events`,
    );
    expect(Number(rows[0].events)).toBeGreaterThan(0);
    expect(Number(rows[0].traced)).toBe(0);
  } finally {
    await client.end();
  }
  expect(service.output()).not.toContain('Tracing on');
});
