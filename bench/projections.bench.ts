// Projection benchmark (issue 3): rebuild speed against a plain keyset scan of the same events, and
// projection lag under a steady write load. Prints one JSON line per figure and a markdown table.
//   npm run bench:projections                 (1,000,000 events; BENCH_EVENTS to change)
// `npm run bench` runs it too (runProjectionsBench), with BENCH_PROJECTION_EVENTS (default 200,000).
import 'reflect-metadata';
import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { CommandBus } from '@nestjs/cqrs';
import pg from 'pg';
import { DepositMoney } from '../src/accounts/deposit-money/deposit-money.command.js';
import { AppModule } from '../src/app.module.js';
import { loadConfig } from '../src/config/app-config.js';
import { type Checkpoint, ProjectionAdmin, ProjectionEngine } from '../src/event-sourcing/index.js';
import { type BenchServer, describeMachine, isMain, openBenchServer, percentile, report, round } from './bench-database.js';

export interface ProjectionSettings {
  readonly events: number;
  readonly eventsPerAccount: number;
  readonly lagRatePerSecond: number;
  readonly lagSeconds: number;
}

export function projectionSettings(env: NodeJS.ProcessEnv = process.env, defaultEvents = 1_000_000): ProjectionSettings {
  return {
    events: Number(env.BENCH_EVENTS ?? defaultEvents),
    eventsPerAccount: 100,
    lagRatePerSecond: Number(env.BENCH_LAG_RATE ?? 100),
    lagSeconds: Number(env.BENCH_LAG_SECONDS ?? 20),
  };
}

const accountsOf = (settings: ProjectionSettings) => Math.ceil(settings.events / settings.eventsPerAccount);

/**
 * Seeds eventsPerAccount events per account (opened, then deposits of 200 and withdrawals of 100
 * alternating, with their balances), 1,000 accounts per statement and transaction.
 */
async function seed(client: pg.Client, settings: ProjectionSettings): Promise<void> {
  const accounts = accountsOf(settings);
  for (let first = 0; first < accounts; first += 1000) {
    const last = Math.min(accounts, first + 1000) - 1;
    await client.query(`
      INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
      SELECT 'account-' || a.id, e.v,
        CASE WHEN e.v = 1 THEN 'accounts.AccountOpened' WHEN e.v % 2 = 0 THEN 'accounts.MoneyDeposited' ELSE 'accounts.MoneyWithdrawn' END,
        1, e.event_id,
        CASE WHEN e.v = 1 THEN jsonb_build_object('accountId', a.id, 'ownerName', 'Owner ' || a.n, 'currency', 'EUR')
             ELSE jsonb_build_object('accountId', a.id, 'amount', CASE WHEN e.v % 2 = 0 THEN 200 ELSE 100 END,
                                     'balanceAfter', 200 * ceil((e.v - 1) / 2.0)::int - 100 * floor((e.v - 1) / 2.0)::int) END,
        jsonb_build_object('eventId', e.event_id, 'correlationId', e.event_id, 'causationId', e.event_id,
                           'occurredAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
      FROM (SELECT n, md5('bench-account-' || n)::uuid AS id FROM generate_series(${first}, ${last}) AS n) a
      CROSS JOIN LATERAL (
        SELECT v, md5('bench-event-' || a.n || '-' || v)::uuid AS event_id FROM generate_series(1, ${settings.eventsPerAccount}) AS v
      ) e
      ORDER BY a.n, e.v`);
  }
}

/** The baseline: read every event in pages of 1,000 by position with pg and parse its JSON. */
async function keysetScan(client: pg.Client): Promise<number> {
  let after = 0;
  let count = 0;
  for (;;) {
    const { rows } = await client.query<{ position: string; data: object; metadata: object }>(
      'SELECT position, stream_id, version, type, data, metadata, recorded_at FROM events WHERE position > $1 ORDER BY position LIMIT 1000',
      [after],
    );
    if (rows.length === 0) return count;
    count += rows.length;
    after = Number(rows[rows.length - 1].position);
  }
}

async function waitUntilCaughtUp(admin: ProjectionAdmin, names: string[]): Promise<void> {
  for (;;) {
    const reports = (await admin.status()).filter((r) => names.includes(r.name));
    if (reports.every((r) => r.lagEvents === 0 && !r.rebuild)) return;
    await sleep(250);
  }
}

async function measureLag(app: INestApplicationContext, ids: ReadonlyMap<number, string>, settings: ProjectionSettings): Promise<number[]> {
  const commands = app.get(CommandBus);
  const engine = app.get(ProjectionEngine);
  const pending = new Map<number, number>(); // position → committed at
  const lags: number[] = [];
  engine.progress.on('advanced', (name: string, checkpoint: Checkpoint) => {
    if (name !== 'account-summary') return;
    const now = performance.now();
    for (const [position, committedAt] of pending) {
      if (position <= checkpoint.position) {
        lags.push(now - committedAt);
        pending.delete(position);
      }
    }
  });
  const interval = 1000 / settings.lagRatePerSecond;
  const started = performance.now();
  const inFlight: Array<Promise<void>> = [];
  for (let i = 0; performance.now() - started < settings.lagSeconds * 1000; i++) {
    const due = started + i * interval;
    if (due > performance.now()) await sleep(due - performance.now());
    const id = ids.get(randomInt(ids.size))!;
    inFlight.push(
      commands.execute(new DepositMoney(id, 100)).then((appended) => {
        pending.set(appended.position, performance.now());
      }),
    );
  }
  await Promise.all(inFlight);
  while (pending.size > 0) await sleep(50);
  return lags.sort((a, b) => a - b);
}

/** Seeds, scans, catches up, rebuilds and measures the lag on a fresh database of `server`; returns markdown rows. */
export async function runProjectionsBench(server: BenchServer, settings = projectionSettings()): Promise<string[]> {
  const database = await server.database('ledger_bench_projections');
  const config = loadConfig({ ...process.env, DATABASE_POOL_SIZE: '10', LOG_LEVEL: 'warn' });
  const accounts = accountsOf(settings);
  const group = { group: 'projections' };
  let app: INestApplicationContext | undefined;
  let client: pg.Client | undefined;
  try {
    // Migrations run when the application starts; the engine is kept off while seeding.
    app = await NestFactory.createApplicationContext(
      AppModule.forRoot({ ...config, projections: { ...config.projections, enabled: false } }, database.url),
      { logger: ['error', 'warn'] },
    );
    await app.close();
    app = undefined;
    client = new pg.Client({ connectionString: database.url });
    client.on('error', () => undefined); // the database is dropped at the end, under this client
    await client.connect();
    console.error(`projections: seeding ${settings.events} events…`);
    let t = performance.now();
    await seed(client, settings);
    await client.query('VACUUM ANALYZE events');
    report('seed (SQL, for the projection benchmark)', round(settings.events / ((performance.now() - t) / 1000)), 'events/s', {
      ...group,
      key: 'projections.seed',
      events: settings.events,
    });
    const { rows } = await client.query<{ id: string; n: number }>(
      `SELECT md5('bench-account-' || n)::uuid AS id, n FROM generate_series(0, ${accounts - 1}) AS n`,
    );
    const ids = new Map<number, string>(rows.map((row) => [row.n, row.id]));

    console.error('projections: baseline keyset scan…');
    t = performance.now();
    const scanned = await keysetScan(client);
    const scanRate = scanned / ((performance.now() - t) / 1000);
    report('keyset scan of the events with pg (baseline)', round(scanRate), 'events/s', {
      ...group,
      key: 'projections.scan',
      events: scanned,
    });

    console.error('projections: initial catch-up of the async projections…');
    t = performance.now();
    app = await NestFactory.createApplicationContext(AppModule.forRoot(config, database.url), { logger: ['error', 'warn'] });
    const admin = app.get(ProjectionAdmin);
    await waitUntilCaughtUp(admin, ['account-summary', 'account-transactions']);
    const catchUpRate = (2 * settings.events) / ((performance.now() - t) / 1000);
    report('initial catch-up (2 projections together)', round(catchUpRate), 'events/s per projection summed', {
      ...group,
      key: 'projections.catch-up',
      events: 2 * settings.events,
    });

    console.error('projections: rebuild of account-summary…');
    t = performance.now();
    await admin.rebuild('account-summary');
    await waitUntilCaughtUp(admin, ['account-summary']);
    const rebuildRate = settings.events / ((performance.now() - t) / 1000);
    report('rebuild of account-summary', round(rebuildRate), 'events/s', {
      ...group,
      key: 'projections.rebuild',
      events: settings.events,
      ratioToKeysetScan: round(rebuildRate / scanRate, 3),
    });

    console.error(`projections: lag at ${settings.lagRatePerSecond} deposits/s for ${settings.lagSeconds} s…`);
    const lags = await measureLag(app, ids, settings);
    const lag = { ...group, samples: lags.length, rate: settings.lagRatePerSecond };
    report(`projection lag p50 at ${settings.lagRatePerSecond} deposits/s`, round(percentile(lags, 50), 1), 'ms', {
      ...lag,
      key: 'projections.lag.p50',
    });
    report(`projection lag p99 at ${settings.lagRatePerSecond} deposits/s`, round(percentile(lags, 99), 1), 'ms', {
      ...lag,
      key: 'projections.lag.p99',
    });
    report(`projection lag max at ${settings.lagRatePerSecond} deposits/s`, round(lags[lags.length - 1], 1), 'ms', {
      ...lag,
      key: 'projections.lag.max',
    });

    return [
      `| events | ${settings.events.toLocaleString('en')} (${accounts.toLocaleString('en')} accounts × ${settings.eventsPerAccount}) |`,
      `| keyset scan (baseline) | ${Math.round(scanRate).toLocaleString('en')} events/s |`,
      `| rebuild account-summary | ${Math.round(rebuildRate).toLocaleString('en')} events/s (${(rebuildRate / scanRate).toFixed(2)} × scan) |`,
      `| initial catch-up, 2 projections | ${Math.round(catchUpRate).toLocaleString('en')} events/s (summed) |`,
      `| lag at ${settings.lagRatePerSecond}/s: p50 / p99 / max | ${percentile(lags, 50).toFixed(1)} / ${percentile(lags, 99).toFixed(1)} / ${lags[lags.length - 1].toFixed(1)} ms (${lags.length} samples) |`,
    ];
  } finally {
    await app?.close();
    await client?.end().catch(() => undefined);
    await database.close();
  }
}

if (isMain(import.meta.url)) {
  const server = await openBenchServer();
  try {
    const machine = await describeMachine(server.url);
    const rows = await runProjectionsBench(server);
    console.log('\n| figure | value |\n|---|---|');
    for (const [key, value] of Object.entries(machine)) console.log(`| ${key} | ${value} |`);
    for (const row of rows) console.log(row);
  } catch (error) {
    console.error(error);
    process.exitCode = 1;
  } finally {
    await server.close();
  }
}
