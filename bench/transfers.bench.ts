// Transfers benchmark (issue 15): how fast the transfer process settles a backlog, against the same
// run's ceiling, and how long a transfer takes from its 202 to `completed` under an open-loop load.
//   npm run bench:transfers        (settings: BENCH_TRANSFERS_* below; `npm run bench` runs it too)
// Reported, never asserted. The service is the compiled dist/src/main.js in a process of its own.
//
// 1. Settle rate. A backlog of BENCH_TRANSFERS_BACKLOG transfers between BENCH_TRANSFERS_ACCOUNTS
//    accounts is accepted over HTTP by a service with PROJECTIONS_ENABLED=false (nobody settles
//    them), into a seed database. Each measured configuration starts a fresh copy of it
//    (CREATE DATABASE … TEMPLATE) and a service with projections on, and times the settlement of the
//    whole backlog (TransferCompleted/TransferFailed events in the log), capped at
//    BENCH_TRANSFERS_SETTLE_MAX_SECONDS (then the rate is the settled part over the cap):
//    - one segment reacting to one event at a time (the engine before issue 15):
//      PROJECTION_SEGMENTS_TRANSFER_PROCESS=1, PROJECTION_REACTION_CONCURRENCY=1;
//    - the default segmentation and lanes (whatever PROJECTION_SEGMENTS* and
//      PROJECTION_REACTION_CONCURRENCY say, or the engine's defaults);
//    - the ceiling: the same appends the process makes per transfer (debit of the source, SourceDebited,
//      credit of the target, settlement of the source, TargetCredited + TransferCompleted) issued
//      straight through EventStore.append, with no reads and no version checks (ANY), by
//      BENCH_TRANSFERS_WORKERS concurrent workers (default PROJECTION_SEGMENTS, else 4).
// 2. Latency. A fresh database, the default service, BENCH_TRANSFERS_RATE transfers/s offered
//    open-loop at a fixed rate for BENCH_TRANSFERS_LATENCY_SECONDS: latency is the TransferCompleted
//    event's recorded_at (the database clock at its INSERT, same machine) minus the moment the 202
//    arrived; a transfer not completed BENCH_TRANSFERS_DRAIN_SECONDS after the load counts as slower
//    than any completed one. Also the backlog (pending transfers) when the load stops.
import 'reflect-metadata';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type DynamicModule, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { CqrsModule } from '@nestjs/cqrs';
import pg from 'pg';
import { ACCOUNT_EVENTS, TransferCredited, TransferDebited, TransferSettled } from '../src/accounts/account.events.js';
import { accountStreamId } from '../src/accounts/account.js';
import { issueToken } from '../src/auth/token-issuer.js';
import { loadConfig } from '../src/config/app-config.js';
import { DatabaseModule } from '../src/database/database.module.js';
import { ANY, EventSourcingModule, EventStore } from '../src/event-sourcing/index.js';
import { SourceDebited, TRANSFER_EVENTS, TargetCredited, TransferCompleted } from '../src/transfers/transfer.events.js';
import { transferStreamId } from '../src/transfers/transfer.js';
import { type BenchServer, describeMachine, freePort, isMain, openBenchServer, percentile, report, round } from './bench-database.js';

export interface TransfersSettings {
  readonly backlog: number;
  readonly accounts: number;
  readonly clients: number;
  readonly settleMaxSeconds: number;
  readonly workers: number;
  readonly segments: string;
  readonly rate: number;
  readonly latencySeconds: number;
  readonly drainSeconds: number;
}

export function transfersSettings(env: NodeJS.ProcessEnv = process.env): TransfersSettings {
  return {
    backlog: Number(env.BENCH_TRANSFERS_BACKLOG ?? 5_000),
    accounts: Number(env.BENCH_TRANSFERS_ACCOUNTS ?? 100),
    clients: Number(env.BENCH_TRANSFERS_CLIENTS ?? 16),
    settleMaxSeconds: Number(env.BENCH_TRANSFERS_SETTLE_MAX_SECONDS ?? 40),
    workers: Number(env.BENCH_TRANSFERS_WORKERS ?? env.PROJECTION_SEGMENTS ?? 4),
    segments: env.PROJECTION_SEGMENTS ?? 'engine default',
    rate: Number(env.BENCH_TRANSFERS_RATE ?? 100),
    latencySeconds: Number(env.BENCH_TRANSFERS_LATENCY_SECONDS ?? 60),
    drainSeconds: Number(env.BENCH_TRANSFERS_DRAIN_SECONDS ?? 10),
  };
}

const MAIN_JS = join(import.meta.dirname, '..', 'src', 'main.js');
const AUTH = {
  authorization: `Bearer ${issueToken(loadConfig({}), { subject: 'bench', scopes: ['ledger:commands', 'ledger:queries', 'ledger:admin'], expiresIn: '1h' })}`,
};

interface Service {
  readonly url: string;
  stop(): Promise<void>;
}

/** The parallelism settings of the engine (PROJECTION_SEGMENTS*, PROJECTION_REACTION_CONCURRENCY), passed on from this environment. */
function segmentEnvironment(): Record<string, string> {
  const passed = (name: string) => name.startsWith('PROJECTION_SEGMENTS') || name === 'PROJECTION_REACTION_CONCURRENCY';
  return Object.fromEntries(Object.entries(process.env).filter((entry): entry is [string, string] => passed(entry[0]) && !!entry[1]));
}

/** dist/src/main.js in a process of its own; resolves once it answers HTTP. */
async function startService(databaseUrl: string, env: Record<string, string>): Promise<Service> {
  const port = await freePort();
  const cwd = mkdtempSync(join(tmpdir(), 'ledger-bench-transfers-'));
  const child: ChildProcess = spawn(process.execPath, [MAIN_JS], {
    cwd,
    env: {
      PATH: process.env.PATH ?? '',
      LOG_LEVEL: 'warn',
      RATE_LIMIT_ENABLED: 'false',
      PROJECTION_POLL_INTERVAL_MS: '100',
      ...env,
      DATABASE_URL: databaseUrl,
      PORT: String(port),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const orphanGuard = () => child.kill('SIGKILL');
  process.once('exit', orphanGuard);
  void exited.then(() => {
    process.off('exit', orphanGuard);
    rmSync(cwd, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${port}`;
  const service: Service = {
    url,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(killer);
    },
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the service exited at start:\n${output}`);
    const response = await fetch(`${url}/admin/projections`, { headers: AUTH }).catch(() => undefined);
    if (response?.ok) return service;
    if (Date.now() > deadline) {
      await service.stop();
      throw new Error(`the service did not start within 60 s:\n${output}`);
    }
    await sleep(100);
  }
}

async function post(url: string, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { ...AUTH, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json().catch(() => undefined) };
}

async function inParallel(count: number, limit: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

/** Opens and funds `count` accounts over HTTP (each with far more than its transfers can take). */
async function openAccounts(url: string, count: number): Promise<string[]> {
  const ids: string[] = new Array(count);
  await inParallel(count, 8, async (index) => {
    const opened = await post(url, '/accounts', { ownerName: `Bench ${index}`, currency: 'EUR' });
    if (opened.status !== 201) throw new Error(`POST /accounts answered ${opened.status}`);
    const funded = await post(url, `/accounts/${opened.body.id}/deposits`, { amount: 1_000_000_000 });
    if (funded.status !== 200) throw new Error(`deposit answered ${funded.status}`);
    ids[index] = opened.body.id;
  });
  return ids;
}

const pairOf = (accounts: readonly string[], index: number): [string, string] => {
  const from = accounts[(index * 7919) % accounts.length];
  const to = accounts[(index * 7919 + 1 + (index % (accounts.length - 1))) % accounts.length];
  return [from, to];
};

async function requestTransfer(url: string, accounts: readonly string[], index: number): Promise<string> {
  const [fromAccountId, toAccountId] = pairOf(accounts, index);
  const answer = await post(url, '/transfers', { fromAccountId, toAccountId, amount: 1 + (index % 100) });
  if (answer.status !== 202) throw new Error(`POST /transfers answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  return answer.body.id as string;
}

async function count(databaseUrl: string, sql: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return Number((await client.query<{ count: string }>(sql)).rows[0].count);
  } finally {
    await client.end();
  }
}

const SETTLED_SQL = `SELECT count(*) FROM events WHERE type IN ('transfers.TransferCompleted', 'transfers.TransferFailed')`;
const PENDING_SQL = `SELECT (SELECT count(*) FROM events WHERE type = 'transfers.TransferRequested') - (${SETTLED_SQL}) AS count`;

/** The seed: accounts and a backlog of accepted transfers that nobody has settled. */
async function seedBacklog(server: BenchServer, settings: TransfersSettings): Promise<string> {
  const seed = await server.database('bench_transfers_seed');
  const service = await startService(seed.url, { PROJECTIONS_ENABLED: 'false' });
  try {
    const accounts = await openAccounts(service.url, settings.accounts);
    await inParallel(settings.backlog, settings.clients, async (index) => {
      await requestTransfer(service.url, accounts, index);
    });
  } finally {
    await service.stop();
  }
  return seed.url;
}

/** A fresh copy of the seed database (CREATE DATABASE … TEMPLATE), named `name`. */
async function copyOf(server: BenchServer, seedUrl: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${new URL(seedUrl).pathname.slice(1)}`);
  } finally {
    await admin.end();
  }
  const url = new URL(server.url);
  url.pathname = `/${name}`;
  return url.toString();
}

async function dropDatabase(server: BenchServer, name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).finally(() => admin.end());
}

interface Settled {
  readonly settled: number;
  readonly seconds: number;
  readonly complete: boolean;
}

/** Polls the log until `total` transfers are settled (or the cap); from the moment `since` was taken. */
async function timeSettlement(databaseUrl: string, total: number, maxSeconds: number): Promise<Settled> {
  const started = performance.now();
  const before = await count(databaseUrl, SETTLED_SQL);
  for (;;) {
    const settled = (await count(databaseUrl, SETTLED_SQL)) - before;
    const seconds = (performance.now() - started) / 1000;
    if (before + settled >= total) return { settled, seconds, complete: true };
    if (seconds >= maxSeconds) return { settled, seconds, complete: false };
    await sleep(100);
  }
}

async function measureService(
  server: BenchServer,
  seedUrl: string,
  settings: TransfersSettings,
  name: string,
  env: Record<string, string>,
) {
  const url = await copyOf(server, seedUrl, name);
  try {
    const service = await startService(url, env);
    try {
      return await timeSettlement(url, settings.backlog, settings.settleMaxSeconds);
    } finally {
      await service.stop();
    }
  } finally {
    await dropDatabase(server, name);
  }
}

/** The event-sourcing core and the ledger's event types, nothing else: the ceiling's appends. */
@Module({})
class CeilingModule {
  static forRoot(url: string, poolSize: number): DynamicModule {
    const config = loadConfig({});
    return {
      module: CeilingModule,
      imports: [
        DatabaseModule.forRoot(url, poolSize),
        CqrsModule.forRoot(),
        EventSourcingModule.forRoot({
          commands: { maxAttempts: config.commandMaxAttempts, appendGroupStatements: config.appendGroupStatements },
          projections: { ...config.projections, enabled: false },
          snapshots: { intervals: {} },
        }),
        EventSourcingModule.forFeature({ events: [...ACCOUNT_EVENTS, ...TRANSFER_EVENTS] }),
      ],
    };
  }
}

/** The process's five appends per transfer, straight through the store, by `workers` workers. */
async function measureCeiling(server: BenchServer, seedUrl: string, settings: TransfersSettings): Promise<Settled> {
  const name = 'bench_transfers_ceiling';
  const url = await copyOf(server, seedUrl, name);
  const context = await NestFactory.createApplicationContext(CeilingModule.forRoot(url, Math.max(2, settings.workers)), {
    logger: ['error', 'warn'],
  });
  try {
    const store = context.get(EventStore);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client
      .query<{ data: { transferId: string; fromAccountId: string; toAccountId: string; amount: number; currency: string } }>(
        `SELECT data FROM events WHERE type = 'transfers.TransferRequested' ORDER BY position`,
      )
      .finally(() => client.end());
    const transfers = rows.map((row) => row.data);
    const options = { expectedVersion: ANY };
    const started = performance.now();
    await inParallel(transfers.length, settings.workers, async (index) => {
      const { transferId, fromAccountId, toAccountId, amount } = transfers[index];
      await store.append(
        accountStreamId(fromAccountId),
        [new TransferDebited({ accountId: fromAccountId, transferId, amount, balanceAfter: 0 })],
        options,
      );
      await store.append(transferStreamId(transferId), [new SourceDebited({ transferId })], options);
      await store.append(
        accountStreamId(toAccountId),
        [new TransferCredited({ accountId: toAccountId, transferId, amount, balanceAfter: 0 })],
        options,
      );
      await store.append(accountStreamId(fromAccountId), [new TransferSettled({ accountId: fromAccountId, transferId, amount })], options);
      await store.append(
        transferStreamId(transferId),
        [new TargetCredited({ transferId }), new TransferCompleted({ transferId })],
        options,
      );
    });
    return { settled: transfers.length, seconds: (performance.now() - started) / 1000, complete: true };
  } finally {
    await context.close();
    await dropDatabase(server, name);
  }
}

async function measureSettleRate(server: BenchServer, settings: TransfersSettings): Promise<void> {
  const seedStarted = performance.now();
  const seedUrl = await seedBacklog(server, settings);
  console.error(
    `transfers: ${settings.backlog} transfers accepted with no process running (${round((performance.now() - seedStarted) / 1000)} s)`,
  );
  try {
    const extra = { group: 'transfers', backlog: settings.backlog, accounts: settings.accounts };
    const figure = (label: string, key: string, measured: Settled, more: Record<string, unknown>) => {
      const rate = measured.settled / measured.seconds;
      report(label, round(rate, 1), 'transfers/s', {
        ...extra,
        ...more,
        key,
        settled: measured.settled,
        seconds: round(measured.seconds, 1),
        complete: measured.complete,
      });
      return rate;
    };
    const one = figure(
      'settle rate of a backlog, one segment, one event at a time (PROJECTION_SEGMENTS_TRANSFER_PROCESS=1, PROJECTION_REACTION_CONCURRENCY=1)',
      'transfers.settle.one-segment',
      await measureService(server, seedUrl, settings, 'bench_transfers_one', {
        ...segmentEnvironment(),
        PROJECTION_SEGMENTS_TRANSFER_PROCESS: '1',
        PROJECTION_REACTION_CONCURRENCY: '1',
      }),
      { segments: 1 },
    );
    const segmented = figure(
      `settle rate of a backlog, default segmentation (PROJECTION_SEGMENTS: ${settings.segments})`,
      'transfers.settle.segmented',
      await measureService(server, seedUrl, settings, 'bench_transfers_default', segmentEnvironment()),
      { segments: settings.segments },
    );
    const ceiling = figure(
      `ceiling: the same appends straight through EventStore.append, ${settings.workers} workers`,
      'transfers.settle.ceiling',
      await measureCeiling(server, seedUrl, settings),
      { workers: settings.workers },
    );
    report('segmented ÷ one segment', round(segmented / one, 2), '×', {
      group: 'transfers',
      key: 'transfers.settle.ratio-to-one',
      target: 4,
    });
    report('segmented ÷ ceiling', round(segmented / ceiling, 2), '×', {
      group: 'transfers',
      key: 'transfers.settle.ratio-to-ceiling',
      target: 0.5,
    });
  } finally {
    await dropDatabase(server, 'bench_transfers_seed');
  }
}

async function measureLatency(server: BenchServer, settings: TransfersSettings): Promise<void> {
  const database = await server.database('bench_transfers_latency');
  try {
    const service = await startService(database.url, segmentEnvironment());
    const acceptedAt = new Map<string, number>(); // transfer id → epoch ms of its 202
    let failures = 0;
    try {
      const accounts = await openAccounts(service.url, settings.accounts);
      // Open loop at a fixed rate: the i-th request leaves at start + i / rate whatever the answers.
      const total = settings.rate * settings.latencySeconds;
      const start = performance.now();
      const inFlight: Array<Promise<void>> = [];
      for (let index = 0; index < total; index++) {
        const due = start + (index * 1000) / settings.rate;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        inFlight.push(
          requestTransfer(service.url, accounts, index).then(
            (id) => void acceptedAt.set(id, Date.now()),
            () => {
              failures++;
            },
          ),
        );
      }
      await Promise.all(inFlight);
      const pendingAtEnd = await count(database.url, PENDING_SQL);
      const drainUntil = Date.now() + settings.drainSeconds * 1000;
      while (Date.now() < drainUntil && (await count(database.url, PENDING_SQL)) > 0) await sleep(250);
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      const { rows } = await client
        .query<{ id: string; at: string }>(
          `SELECT data->>'transferId' AS id, (extract(epoch FROM recorded_at) * 1000)::text AS at FROM events WHERE type = 'transfers.TransferCompleted'`,
        )
        .finally(() => client.end());
      const completedAt = new Map(rows.map((row) => [row.id, Number(row.at)]));
      const latencies = [...acceptedAt]
        .map(([id, at]) => (completedAt.has(id) ? Math.max(0, completedAt.get(id)! - at) : Infinity))
        .sort((a, b) => a - b);
      const incomplete = latencies.filter((latency) => latency === Infinity).length;
      const finite = (value: number) => (Number.isFinite(value) ? round(value, 1) : null);
      report(
        `transfer latency, 202 → completed, open-loop ${settings.rate}/s for ${settings.latencySeconds} s`,
        finite(percentile(latencies, 99)) ?? 'not completed',
        'ms',
        {
          group: 'transfers',
          key: 'transfers.latency',
          p50Ms: finite(percentile(latencies, 50)),
          p99Ms: finite(percentile(latencies, 99)),
          accepted: acceptedAt.size,
          failures,
          notCompletedAfterDrain: incomplete,
          drainSeconds: settings.drainSeconds,
          offeredRate: settings.rate,
          segments: settings.segments,
        },
      );
      report('backlog (pending transfers) when the open-loop load stopped', pendingAtEnd, 'transfers', {
        group: 'transfers',
        key: 'transfers.latency.backlog',
        target: 0,
      });
    } finally {
      await service.stop();
    }
  } finally {
    await database.close();
  }
}

export async function runTransfersBench(server: BenchServer, settings = transfersSettings()): Promise<void> {
  await measureSettleRate(server, settings);
  await measureLatency(server, settings);
}

if (isMain(import.meta.url)) {
  const server = await openBenchServer();
  try {
    console.error(`machine: ${JSON.stringify(await describeMachine(server.url))}`);
    await runTransfersBench(server);
  } finally {
    await server.close();
  }
}
