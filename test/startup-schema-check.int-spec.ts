import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { accountStreamId } from '../src/accounts/account.js';
import { distPath } from './support/app-process.js';
import { freePort } from './support/free-port.js';
import { type LegacyEvent, insertLegacyEvents } from './support/legacy-events.js';
import { withClient } from './support/projection-fixtures.js';
import { startTestApp } from './support/test-app.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

// The service refuses to start on a log it cannot read — an event type no class is registered for,
// or a schema version newer than the code's — with an error naming the type, rather than failing
// later in projections and commands. Both through createApp (startTestApp) and through the compiled
// service (node dist/src/main.js), which must exit non-zero and say why.

const databases: TestDatabase[] = [];
let migrated: TestDatabase;
beforeAll(async () => {
  // One database migrated by the service itself (started once, then stopped), used as the template
  // of every database of this file.
  migrated = await createTestDatabase();
  databases.push(migrated);
  const t = await startTestApp({ PROJECTIONS_ENABLED: 'false' }, migrated);
  await t.close();
});
afterAll(async () => {
  for (const database of databases) await database.drop();
});

/** A copy of the migrated database (CREATE DATABASE … TEMPLATE) holding these extra events. */
async function databaseWith(streamId: string, events: readonly LegacyEvent[]): Promise<TestDatabase> {
  const name = `ledger_test_${randomBytes(6).toString('hex')}`;
  const serverUrl = process.env.TEST_DATABASE_URL!;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${new URL(migrated.url).pathname.slice(1)}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const database: TestDatabase = {
    url: url.toString(),
    async drop() {
      await withClient(serverUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
  databases.push(database);
  await withClient(database.url, (client) => insertLegacyEvents(client, streamId, events));
  return database;
}

/** Runs the compiled service on `databaseUrl` until it exits (a guard timeout kills it); its exit code and output. */
function runService(databaseUrl: string, port: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  const cwd = mkdtempSync(join(tmpdir(), 'ledger-refusal-')); // no .env of the project is read
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [distPath('src', 'main.js')], {
      cwd,
      env: { PATH: process.env.PATH ?? '', DATABASE_URL: databaseUrl, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(guard);
      rmSync(cwd, { recursive: true, force: true });
      resolve({ code, signal, output });
    });
  });
}

const CASES: Array<{ name: string; type: string; schemaVersion: number; events: (id: string) => LegacyEvent[]; message: RegExp }> = [
  {
    name: 'an event type no class is registered for',
    type: 'legacy.Unheard',
    schemaVersion: 1,
    events: () => [{ type: 'legacy.Unheard', schemaVersion: 1, data: { anything: true } }],
    message: /"legacy\.Unheard".*schema version 1.*no event class is registered/s,
  },
  {
    name: 'a schema version newer than the code',
    type: 'accounts.MoneyDeposited',
    schemaVersion: 9,
    events: (id) => [
      { type: 'accounts.AccountOpened', schemaVersion: 1, data: { accountId: id, ownerName: 'Future', currency: 'EUR' } },
      {
        type: 'accounts.MoneyDeposited',
        schemaVersion: 9,
        data: { accountId: id, amount: 1, balanceAfter: 1, reference: null, memo: 'v9' },
      },
    ],
    message: /"accounts\.MoneyDeposited".*schema version 9.*newer than this code/s,
  },
];

/** Per case: its database, and the compiled service started on it (both run while the tests do). */
const prepared = new Map<string, { database: TestDatabase; service: ReturnType<typeof runService> }>();
beforeAll(async () => {
  for (const { name, events } of CASES) {
    const id = randomUUID();
    const database = await databaseWith(accountStreamId(id), events(id));
    const service = freePort().then((port) => runService(database.url, port));
    service.catch(() => undefined);
    prepared.set(name, { database, service });
  }
});

describe.each(CASES)('a log holding $name', ({ name, type, schemaVersion, message }) => {
  let database: TestDatabase;
  let service: ReturnType<typeof runService>;
  beforeAll(() => {
    ({ database, service } = prepared.get(name)!);
  });

  it(`createApp (startTestApp) rejects with an UnreadableEventSchemaError naming ${type}`, async () => {
    const error = await startTestApp({}, database).then(
      async (t) => {
        await t.close();
        return undefined;
      },
      (reason: unknown) => reason as Error,
    );
    expect(error).toBeInstanceOf(Error);
    expect({
      name: error!.name,
      code: (error as { code?: string }).code,
      type: (error as { type?: string }).type,
      schemaVersion: (error as { schemaVersion?: number }).schemaVersion,
    }).toEqual({
      name: 'UnreadableEventSchemaError',
      code: 'UNREADABLE_EVENT_SCHEMA',
      type,
      schemaVersion,
    });
    expect(error!.message).toMatch(message);
  });

  it('refuses as well with PROJECTIONS_ENABLED=false (an instance that only serves HTTP)', async () => {
    await expect(startTestApp({ PROJECTIONS_ENABLED: 'false' }, database)).rejects.toThrow(message);
  });

  it(`node dist/src/main.js exits non-zero, printing the type ${type}`, async () => {
    const result = await service;
    expect({ code: result.code, signal: result.signal }).toEqual({ code: 1, signal: null });
    expect(result.output).toContain(`Cannot start: Stored events of type "${type}" (schema version ${schemaVersion}) cannot be read`);
    expect(result.output).not.toMatch(/Listening on/);
  });
});

describe('a log holding only readable old versions (version-1 deposits, upcast on read)', () => {
  it('starts normally', async () => {
    const id = randomUUID();
    const database = await databaseWith(accountStreamId(id), [
      { type: 'accounts.AccountOpened', schemaVersion: 1, data: { accountId: id, ownerName: 'Old', currency: 'EUR' } },
      { type: 'accounts.MoneyDeposited', schemaVersion: 1, data: { accountId: id, amount: 5, balanceAfter: 5 } },
    ]);
    const t = await startTestApp({}, database);
    try {
      const response = await t.http.get(`/accounts/${id}/events`);
      expect(response.body.items.map((event: Record<string, any>) => [event.type, event.schemaVersion, event.data.reference])).toEqual([
        ['accounts.AccountOpened', 1, undefined],
        ['accounts.MoneyDeposited', 2, null],
      ]);
    } finally {
      await t.close();
    }
  });
});
