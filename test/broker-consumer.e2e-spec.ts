import { type ChildProcess, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, it } from '@jest/globals';
import pg from 'pg';
import { type AppProcess, call, distPath, startAppProcess } from './support/app-process.js';
import { type NatsServer, startNatsServer } from './support/nats-server.js';
import { eventually, rows, waitUntilCaughtUp } from './support/projection-fixtures.js';
import { mixedLoad, openAccounts } from './support/relay-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const SCHEMA = 'broker_consumer';

/** `ledger consume balances` as a production install runs it: the compiled CLI in a process of its own. */
function startConsumer(databaseUrl: string, natsUrl: string): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [distPath('src', 'cli', 'ledger.js'), 'consume', 'balances'], {
    env: { PATH: process.env.PATH ?? '', NATS_URL: natsUrl, CONSUMER_DATABASE_URL: databaseUrl },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  process.once('exit', () => child.kill('SIGKILL'));
  return { child, output: () => output };
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

describe('the balances consumer on the other side of the broker', () => {
  let database: TestDatabase;
  let client: pg.Pool;
  let broker: NatsServer;
  let app: AppProcess;
  const consumers: ChildProcess[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    client = new pg.Pool({ connectionString: database.url, max: 2 });
    broker = await startNatsServer();
    app = await startAppProcess(database.url, { NATS_URL: broker.url });
  }, 60_000);

  afterAll(async () => {
    for (const child of consumers) await kill(child);
    await app?.kill();
    await client?.end();
    await broker?.dispose();
    await database?.drop();
  });

  it('killed (kill -9) mid-stream and restarted, its table equals the balances the service reports', async () => {
    const accounts = await openAccounts(app.url, 10);
    const first = startConsumer(database.url, broker.url);
    consumers.push(first.child);
    let stop = false;
    const load = mixedLoad(app.url, accounts, { workers: 6, until: () => stop });
    await eventually(
      'the consumer to apply some events',
      async () => {
        const [row] = await rows<{ n: string }>(client, `SELECT coalesce(sum(version), 0)::text AS n FROM ${SCHEMA}.broker_balances`).catch(
          () => [{ n: '0' }],
        );
        return Number(row.n) > 50 ? true : undefined;
      },
      60_000,
      10,
      async () => first.output(),
    );
    await kill(first.child);
    await sleep(500);
    const second = startConsumer(database.url, broker.url);
    consumers.push(second.child);
    await sleep(1500);
    stop = true;
    await load;
    await waitUntilCaughtUp(client, ['transfer-process', 'nats-relay'], 120_000);

    const expected = new Map<string, { balance: number; version: number }>();
    for (const id of accounts) {
      const account = (await call(app.url, 'GET', `/accounts/${id}?minPosition=0`)).body;
      expected.set(id, { balance: account.balance, version: account.version });
    }
    await eventually(
      'broker_balances to equal the balances the service reports',
      async () => {
        const table = await rows<{ account_id: string; balance: string; version: number }>(
          client,
          `SELECT account_id, balance::text, version FROM ${SCHEMA}.broker_balances`,
        );
        const actual = new Map(table.map((row) => [row.account_id, { balance: Number(row.balance), version: row.version }]));
        return JSON.stringify([...expected].sort()) === JSON.stringify([...actual].sort()) ? true : undefined;
      },
      60_000,
      100,
      async () => second.output(),
    );
  }, 240_000);
});
