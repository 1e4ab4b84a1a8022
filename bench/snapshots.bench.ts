// Snapshot benchmark (issue 5): loading an account of 10,000 events, and a deposit to it, without
// and with snapshots, measured in the same run. Prints one JSON line per figure and a markdown table.
//   npm run bench:snapshots          (BENCH_STREAM_EVENTS, BENCH_ROUNDS to change)
// `npm run bench` runs it too (runSnapshotsBench).
import 'reflect-metadata';
import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { CommandBus } from '@nestjs/cqrs';
import pg from 'pg';
import { accountDecider, accountStreamId } from '../src/accounts/account.js';
import { DepositMoney } from '../src/accounts/deposit-money/deposit-money.command.js';
import { AppModule } from '../src/app.module.js';
import { loadConfig } from '../src/config/app-config.js';
import { AggregateLoader, SnapshotStore } from '../src/event-sourcing/index.js';
import { type BenchServer, describeMachine, isMain, openBenchServer, percentile, report, round } from './bench-database.js';

export interface SnapshotSettings {
  readonly streamEvents: number;
  readonly rounds: number;
}

export function snapshotSettings(env: NodeJS.ProcessEnv = process.env): SnapshotSettings {
  return {
    streamEvents: Number(env.BENCH_STREAM_EVENTS ?? 10_000),
    rounds: Number(env.BENCH_ROUNDS ?? 30),
  };
}

const ACCOUNT = '00000000-0000-4000-8000-000000000001';

async function seed(url: string, settings: SnapshotSettings): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(
    `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
     SELECT $1, v,
       CASE WHEN v = 1 THEN 'accounts.AccountOpened' ELSE 'accounts.MoneyDeposited' END, 1, gen_random_uuid(),
       CASE WHEN v = 1 THEN jsonb_build_object('accountId', $2::text, 'ownerName', 'Bench', 'currency', 'EUR')
            ELSE jsonb_build_object('accountId', $2::text, 'amount', 1, 'balanceAfter', v - 1) END,
       jsonb_build_object('eventId', gen_random_uuid(), 'correlationId', 'bench', 'causationId', 'bench', 'occurredAt', '2026-01-01T00:00:00.000Z')
     FROM generate_series(1, $3::int) AS v`,
    [accountStreamId(ACCOUNT), ACCOUNT, settings.streamEvents],
  );
  await client.query('VACUUM ANALYZE events');
  await client.end();
}

async function timed(rounds: number, work: () => Promise<unknown>): Promise<number[]> {
  const times: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const started = performance.now();
    await work();
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b);
}

async function context(url: string, snapshotIntervals: string): Promise<INestApplicationContext> {
  const config = loadConfig({ ...process.env, SNAPSHOT_INTERVALS: snapshotIntervals, PROJECTIONS_ENABLED: 'false', LOG_LEVEL: 'warn' });
  return NestFactory.createApplicationContext(AppModule.forRoot(config, url), { logger: ['error', 'warn'] });
}

/** Loads and deposits on one long account, without and with snapshots; returns markdown rows. */
export async function runSnapshotsBench(server: BenchServer, settings = snapshotSettings()): Promise<string[]> {
  const database = await server.database('ledger_bench_snapshots');
  const rows: string[] = [];
  try {
    const setup = await context(database.url, 'account:0'); // runs the migrations
    await setup.close();
    await seed(database.url, settings);

    for (const [label, key, intervals] of [
      ['without snapshots', 'none', 'account:0'],
      ['with snapshots (every 100 events)', 'every-100', 'account:100'],
    ] as const) {
      console.error(`snapshots: ${label}…`);
      const app = await context(database.url, intervals);
      try {
        const loader = app.get(AggregateLoader);
        const commands = app.get(CommandBus);
        if (intervals !== 'account:0') {
          // The snapshot the last deposit that crossed the interval would have taken.
          const loaded = await loader.load(accountStreamId(ACCOUNT), accountDecider);
          const snapshots = app.get(SnapshotStore);
          await snapshots.save(accountStreamId(ACCOUNT), accountDecider.snapshots!, loaded, snapshots.manager);
        }
        const loads = await timed(settings.rounds, () => loader.load(accountStreamId(ACCOUNT), accountDecider));
        const deposits = await timed(settings.rounds, () => commands.execute(new DepositMoney(ACCOUNT, 1)));
        const extra = { group: 'snapshots', events: settings.streamEvents, rounds: settings.rounds };
        report(
          `load of a ${settings.streamEvents.toLocaleString('en')}-event account, ${label}, p50`,
          round(percentile(loads, 50), 2),
          'ms',
          {
            ...extra,
            key: `snapshots.load.${key}`,
            p99Ms: round(percentile(loads, 99), 2),
          },
        );
        report(`deposit to that account, ${label}, p50`, round(percentile(deposits, 50), 2), 'ms', {
          ...extra,
          key: `snapshots.deposit.${key}`,
          p99Ms: round(percentile(deposits, 99), 2),
        });
        rows.push(
          `| ${label} | ${percentile(loads, 50).toFixed(2)} ms (p99 ${percentile(loads, 99).toFixed(2)}) | ${percentile(deposits, 50).toFixed(2)} ms (p99 ${percentile(deposits, 99).toFixed(2)}) |`,
        );
      } finally {
        await app.close();
      }
    }
    return [
      `| account of ${settings.streamEvents.toLocaleString('en')} events, ${settings.rounds} rounds | load p50 | deposit p50 |`,
      '|---|---|---|',
      ...rows,
    ];
  } finally {
    await database.close();
  }
}

if (isMain(import.meta.url)) {
  const server = await openBenchServer();
  try {
    const machine = await describeMachine(server.url);
    const rows = await runSnapshotsBench(server);
    console.log('\n| machine | |\n|---|---|');
    for (const [key, value] of Object.entries(machine)) console.log(`| ${key} | ${value} |`);
    console.log(`\n${rows.join('\n')}`);
  } catch (error) {
    console.error(error);
    process.exitCode = 1;
  } finally {
    await server.close();
  }
}
