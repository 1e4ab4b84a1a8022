// Snapshot benchmark (issue 5): loading an account of 10,000 events, and a deposit to it, without
// and with snapshots, measured in the same run. Prints one JSON line per figure and a markdown table.
//   npm run bench:snapshots          (BENCH_STREAM_EVENTS, BENCH_ROUNDS to change)
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
import { describeMachine, openBenchDatabase, percentile, report } from './bench-database.js';

const STREAM_EVENTS = Number(process.env.BENCH_STREAM_EVENTS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 30);
const ACCOUNT = '00000000-0000-4000-8000-000000000001';

async function seed(url: string): Promise<void> {
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
    [accountStreamId(ACCOUNT), ACCOUNT, STREAM_EVENTS],
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
  const config = loadConfig({ ...process.env, SNAPSHOT_INTERVALS: snapshotIntervals, PROJECTIONS_ENABLED: 'false' });
  return NestFactory.createApplicationContext(AppModule.forRoot(config, url), { logger: ['error', 'warn'] });
}

async function main(): Promise<void> {
  const database = await openBenchDatabase('ledger_bench_snapshots');
  const rows: string[] = [];
  try {
    const setup = await context(database.url, 'account:0'); // runs the migrations
    await setup.close();
    await seed(database.url);
    const machine = await describeMachine(database.url);

    for (const [label, intervals] of [
      ['without snapshots', 'account:0'],
      ['with snapshots (every 100 events)', 'account:100'],
    ] as const) {
      const app = await context(database.url, intervals);
      const loader = app.get(AggregateLoader);
      const commands = app.get(CommandBus);
      if (intervals !== 'account:0') {
        // The snapshot the last deposit that crossed the interval would have taken.
        const loaded = await loader.load(accountStreamId(ACCOUNT), accountDecider);
        const snapshots = app.get(SnapshotStore);
        await snapshots.save(accountStreamId(ACCOUNT), accountDecider.snapshots!, loaded, snapshots.manager);
      }
      const loads = await timed(ROUNDS, () => loader.load(accountStreamId(ACCOUNT), accountDecider));
      const deposits = await timed(ROUNDS, () => commands.execute(new DepositMoney(ACCOUNT, 1)));
      report(`load ${label} p50`, +percentile(loads, 50).toFixed(2), 'ms', { events: STREAM_EVENTS, rounds: ROUNDS });
      report(`deposit ${label} p50`, +percentile(deposits, 50).toFixed(2), 'ms', { rounds: ROUNDS });
      rows.push(`| ${label} | ${percentile(loads, 50).toFixed(2)} ms (p99 ${percentile(loads, 99).toFixed(2)}) | ${percentile(deposits, 50).toFixed(2)} ms (p99 ${percentile(deposits, 99).toFixed(2)}) |`);
      await app.close();
    }
    console.log('\n| machine | |\n|---|---|');
    for (const [key, value] of Object.entries(machine)) console.log(`| ${key} | ${value} |`);
    console.log(`\n| account of ${STREAM_EVENTS.toLocaleString('en')} events, ${ROUNDS} rounds | load p50 | deposit p50 |\n|---|---|---|`);
    for (const row of rows) console.log(row);
  } finally {
    await database.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
