// Append benchmark (issues 7 and 14, part 1): EventStore.append with an exact expected version,
// against the strongest baselines measured in the same run, in alternating rounds:
// - the same rows inserted by ONE prepared INSERT per append from `pg` (pool of the same size) into a
//   table of the same columns with only UNIQUE (stream_id, version), the writer knowing its next version;
// - the older hand-written transaction (BEGIN; read the stream's version; INSERT; COMMIT) into `events`;
// - pgbench, one prepared single-row INSERT per transaction (when /usr/bin/pgbench or BENCH_PGBENCH exists).
//   npm run bench:append             (BENCH_APPEND_SECONDS, BENCH_APPEND_STREAMS to change)
import 'reflect-metadata';
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type DynamicModule, type INestApplicationContext, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { CqrsModule } from '@nestjs/cqrs';
import pg from 'pg';
import { loadConfig } from '../src/config/app-config.js';
import { DatabaseModule } from '../src/database/database.module.js';
import { EventSourcingModule, EventStore, EventType, NO_STREAM } from '../src/event-sourcing/index.js';
import { type BenchServer, describeMachine, isMain, openBenchServer, percentile, report, round } from './bench-database.js';

export interface AppendSettings {
  /** Streams the appends are spread over (each worker owns streams i ≡ worker mod concurrency). */
  readonly streams: number;
  /** Measured seconds per configuration and writer (after `warmupSeconds` per round). */
  readonly seconds: number;
  readonly warmupSeconds: number;
  /**
   * The measured time is cut into rounds that alternate between the writers (baseline, event store,
   * baseline…): a change in what else the machine is doing then weighs on both alike.
   */
  readonly rounds: number;
  /** [concurrency, events per append] */
  readonly configurations: ReadonlyArray<readonly [number, number]>;
}

export function appendSettings(env: NodeJS.ProcessEnv = process.env): AppendSettings {
  return {
    streams: Number(env.BENCH_APPEND_STREAMS ?? 10_000),
    seconds: Number(env.BENCH_APPEND_SECONDS ?? 8),
    warmupSeconds: Number(env.BENCH_APPEND_WARMUP_SECONDS ?? 0.5),
    rounds: Number(env.BENCH_APPEND_ROUNDS ?? 4),
    configurations: [
      [1, 1],
      [8, 1],
      [32, 1],
      [8, 10],
    ],
  };
}

/** A deposit-sized event of the benchmark's own type (the core is used without any feature). */
@EventType('bench.ValueRecorded')
class ValueRecorded {
  readonly accountId!: string;
  readonly amount!: number;
  readonly balanceAfter!: number;
  readonly reference!: string | null;
  constructor(data: ValueRecorded) {
    Object.assign(this, data);
  }
}

/**
 * The event-sourcing core alone on the benchmark database: DatabaseModule + CqrsModule +
 * EventSourcingModule (as test/support/event-store-module.ts builds it).
 */
@Module({})
class AppendBenchModule {
  static forRoot(url: string, poolSize: number): DynamicModule {
    const config = loadConfig({});
    return {
      module: AppendBenchModule,
      imports: [
        DatabaseModule.forRoot(url, poolSize),
        CqrsModule.forRoot(),
        EventSourcingModule.forRoot({
          // APPEND_GROUP_STATEMENTS is taken from the environment, so that other values can be measured.
          commands: {
            maxAttempts: config.commandMaxAttempts,
            appendGroupStatements: loadConfig({ APPEND_GROUP_STATEMENTS: process.env.APPEND_GROUP_STATEMENTS }).appendGroupStatements,
          },
          projections: { ...config.projections, enabled: false },
          snapshots: { intervals: {} },
        }),
        EventSourcingModule.forFeature({ events: [ValueRecorded] }),
      ],
    };
  }
}

type Append = (streamId: string, expectedVersion: number, count: number) => Promise<void>;

interface Round {
  readonly latencies: number[];
  readonly seconds: number;
  readonly appends: number;
}

interface Measured {
  readonly eventsPerSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly appends: number;
}

function merge(rounds: readonly Round[], batch: number): Measured {
  const latencies = rounds.flatMap((round) => round.latencies).sort((a, b) => a - b);
  const appends = rounds.reduce((sum, round) => sum + round.appends, 0);
  const seconds = rounds.reduce((sum, round) => sum + round.seconds, 0);
  return { eventsPerSecond: (appends * batch) / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), appends };
}

/**
 * `concurrency` workers, each appending to its own streams in turn (so it always knows the exact
 * version to expect), for warm-up + measured seconds. Only appends that start in the measured window
 * are counted; the window ends when the last of them completes.
 */
async function drive(
  settings: Pick<AppendSettings, 'streams' | 'seconds' | 'warmupSeconds'>,
  concurrency: number,
  batch: number,
  append: Append,
): Promise<Round> {
  const streamIds = Array.from({ length: settings.streams }, () => `bench-${randomUUID()}`);
  const versions = new Int32Array(settings.streams);
  const started = performance.now();
  const measureFrom = started + settings.warmupSeconds * 1000;
  const stopAt = measureFrom + settings.seconds * 1000;
  const latencies: number[] = [];
  let measuredAppends = 0;
  let measuredEnd = measureFrom;
  const worker = async (index: number) => {
    for (let stream = index; ; stream += concurrency) {
      if (stream >= settings.streams) stream = index;
      const begin = performance.now();
      if (begin >= stopAt) return;
      await append(streamIds[stream], versions[stream], batch);
      versions[stream] += batch;
      const end = performance.now();
      if (begin >= measureFrom) {
        latencies.push(end - begin);
        measuredAppends++;
        measuredEnd = Math.max(measuredEnd, end);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, index) => worker(index)));
  return { latencies, seconds: (measuredEnd - measureFrom) / 1000, appends: measuredAppends };
}

function eventsOf(streamId: string, from: number, count: number): ValueRecorded[] {
  return Array.from(
    { length: count },
    (_, index) => new ValueRecorded({ accountId: streamId, amount: 1, balanceAfter: from + index + 1, reference: null }),
  );
}

/** The event store: one EventStore.append per call, exact expected version. */
async function storeAppender(url: string, concurrency: number): Promise<{ append: Append; close: () => Promise<void> }> {
  // At concurrency 1 the pool has 2 (kept from when a pool of 1 hung the start; migrations now run
  // on a connection of their own): one sequential worker only ever uses one at a time.
  const poolSize = Math.max(2, concurrency);
  const app: INestApplicationContext = await NestFactory.createApplicationContext(AppendBenchModule.forRoot(url, poolSize), {
    logger: ['error', 'warn'],
  });
  const store = app.get(EventStore);
  return {
    append: async (streamId, expected, count) => {
      await store.append(streamId, eventsOf(streamId, expected, count), { expectedVersion: expected === 0 ? NO_STREAM : expected });
    },
    close: () => app.close(),
  };
}

interface AppendWriter {
  readonly append: Append;
  readonly close: () => Promise<void>;
}

/** The metadata and data JSON of a store append, built the same way for every pg baseline. */
function rowValues(streamId: string, expected: number, count: number): unknown[] {
  const occurredAt = new Date().toISOString();
  const values: unknown[] = [];
  for (const event of eventsOf(streamId, expected, count)) {
    const eventId = randomUUID();
    values.push(
      streamId,
      event.balanceAfter,
      'bench.ValueRecorded',
      1,
      eventId,
      JSON.stringify(event),
      JSON.stringify({ correlationId: eventId, causationId: eventId, occurredAt, eventId }),
    );
  }
  return values;
}

const insertText = (table: string, count: number, returning = '') =>
  `INSERT INTO ${table} (stream_id, version, type, schema_version, event_id, data, metadata) VALUES ${Array.from(
    { length: count },
    (_, row) => `(${[1, 2, 3, 4, 5, 6, 7].map((column) => `$${row * 7 + column}`).join(', ')})`,
  ).join(', ')}${returning}`;

/** The table of the strongest baseline: the columns of `events` (with their defaults), UNIQUE (stream_id, version), no trigger. */
const PLAIN_TABLE = 'bench_plain_events';
/** pgbench's own table, of the same shape. */
const PGBENCH_TABLE = 'bench_pgbench_events';

async function createBaselineTables(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const table of [PLAIN_TABLE, PGBENCH_TABLE]) {
      // LIKE copies columns, defaults and CHECK constraints; never triggers, and no index unless asked:
      // the only index is the one the version check needs. `events` takes its position from a
      // trigger (migration 12); this table, without triggers, from an identity.
      await client.query(`CREATE TABLE ${table} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS, UNIQUE (stream_id, version))`);
      await client.query(`ALTER TABLE ${table} ALTER COLUMN position ADD GENERATED ALWAYS AS IDENTITY`);
    }
    await client.query('CREATE SEQUENCE bench_pgbench_version');
  } finally {
    await client.end();
  }
}

/**
 * A baseline's pool lets its connections go once idle between its rounds: at 32 clients the store's
 * pool, two baselines' and pgbench's would otherwise exceed the server's max_connections (100). The
 * reconnections fall in each round's warm-up.
 */
const BASELINE_IDLE_MS = 200;
const baselinePool = (url: string, poolSize: number) =>
  new pg.Pool({ connectionString: url, max: poolSize, idleTimeoutMillis: BASELINE_IDLE_MS });

/**
 * The strongest baseline (issue 14): ONE prepared INSERT per append (one multi-row INSERT for 10
 * events), autocommit, on a pg.Pool of the same size, into PLAIN_TABLE. The writer knows its next
 * version; UNIQUE (stream_id, version) is what would refuse a second writer of it.
 */
function preparedInsertAppender(url: string, poolSize: number): AppendWriter {
  const pool = baselinePool(url, poolSize);
  const texts = new Map<number, string>();
  return {
    append: async (streamId, expected, count) => {
      if (!texts.has(count)) texts.set(count, insertText(PLAIN_TABLE, count));
      await pool.query({ name: `bench-plain-insert-${count}`, text: texts.get(count)!, values: rowValues(streamId, expected, count) });
    },
    close: () => pool.end(),
  };
}

/**
 * The earlier baseline (issue 7), kept as a second column: the same rows into the same `events`
 * table with all its constraints, triggers and indexes. BEGIN; SELECT the stream's version; refuse on
 * a mismatch; INSERT the rows; COMMIT, with named (prepared) statements.
 */
function transactionAppender(url: string, poolSize: number): AppendWriter {
  const pool = baselinePool(url, poolSize);
  const texts = new Map<number, string>();
  return {
    append: async (streamId, expected, count) => {
      const values = rowValues(streamId, expected, count);
      if (!texts.has(count)) texts.set(count, insertText('events', count, ' RETURNING position'));
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const { rows } = await client.query<{ version: number }>({
          name: 'bench-stream-version',
          text: 'SELECT coalesce(max(version), 0) AS version FROM events WHERE stream_id = $1',
          values: [streamId],
        });
        if (rows[0].version !== expected) throw new Error(`${streamId}: expected version ${expected}, found ${rows[0].version}`);
        await client.query({ name: `bench-insert-${count}`, text: texts.get(count)!, values });
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}

/** pgbench's path, or undefined when it is not installed (then its column is skipped, never faked). */
export function findPgbench(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const candidate = env.BENCH_PGBENCH ?? 'pgbench';
  const probe = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? candidate : undefined;
}

/**
 * pgbench doing what the issue's reference did: one prepared single-row INSERT per transaction into
 * its own table, a random stream of `streams`, the version from a sequence (so nothing conflicts), a
 * row of the size of the store's. One call is one round of `seconds` at `clients` clients.
 */
function pgbenchRunner(
  pgbench: string,
  url: string,
  streams: number,
): { run: (clients: number, seconds: number) => Promise<Round>; close: () => Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), 'ledger-bench-pgbench-'));
  const script = join(dir, 'append.sql');
  const data = JSON.stringify({ accountId: `bench-${randomUUID()}`, amount: 1, balanceAfter: 1, reference: null });
  const id = randomUUID();
  const metadata = JSON.stringify({ correlationId: id, causationId: id, occurredAt: new Date().toISOString(), eventId: id });
  writeFileSync(
    script,
    `\\set stream random(1, ${streams})
INSERT INTO ${PGBENCH_TABLE} (stream_id, version, type, schema_version, event_id, data, metadata) VALUES ('pgbench-' || :stream, nextval('bench_pgbench_version'), 'bench.ValueRecorded', 1, gen_random_uuid(), :data, :metadata);
`,
  );
  const target = new URL(url);
  const env = {
    ...process.env,
    PGHOST: target.hostname,
    PGPORT: target.port || '5432',
    PGUSER: decodeURIComponent(target.username),
    PGPASSWORD: decodeURIComponent(target.password),
    PGDATABASE: target.pathname.slice(1),
  };
  return {
    run: async (clients, seconds) => {
      await sleep(BASELINE_IDLE_MS * 2); // until the baselines' pools have closed their idle connections
      return new Promise<Round>((resolve, reject) => {
        // The JSON goes in as parameters (-D), as the store sends it: a literal in the script would be
        // parsed once at PREPARE, and its colons read as pgbench variables.
        const args = [
          '-n',
          '-M',
          'prepared',
          '-D',
          `data=${data}`,
          '-D',
          `metadata=${metadata}`,
          '-c',
          String(clients),
          '-j',
          String(clients),
          '-T',
          String(Math.max(1, Math.round(seconds))),
          '-f',
          script,
        ];
        const child = spawn(pgbench, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
        child.once('error', reject);
        child.once('exit', (code) => {
          const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(output);
          const processed = /number of transactions actually processed: (\d+)/.exec(output);
          const latency = /latency average = ([\d.]+) ms/.exec(output);
          if (code !== 0 || !tps || !processed) {
            reject(new Error(`pgbench ${args.join(' ')} failed (${code}):\n${output}`));
            return;
          }
          const appends = Number(processed[1]);
          // pgbench gives no per-transaction latencies without a log file: its average stands for them.
          resolve({ latencies: latency ? [Number(latency[1])] : [], seconds: appends / Number(tps[1]), appends });
        });
      });
    },
    close: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

interface Writer {
  readonly name: string;
  /** The last part of the figure's key: store, pg-insert, pg-transaction, pgbench. */
  readonly key: string;
  readonly round: (perRound: Pick<AppendSettings, 'streams' | 'seconds' | 'warmupSeconds'>) => Promise<Round>;
  readonly close: () => Promise<void>;
  readonly rounds: Round[];
}

function driven(name: string, key: string, writer: AppendWriter, concurrency: number, batch: number): Writer {
  return { name, key, round: (perRound) => drive(perRound, concurrency, batch, writer.append), close: writer.close, rounds: [] };
}

/** Runs part 1 on a fresh database of `server`; returns after reporting every figure. */
export async function runAppendBench(server: BenchServer, settings = appendSettings()): Promise<void> {
  const database = await server.database('ledger_bench_append');
  const pgbench = findPgbench();
  if (!pgbench) {
    console.error('append: pgbench not found (install postgresql-client or set BENCH_PGBENCH): its column is skipped');
    report('pgbench', 'not installed', '', { group: 'append', key: 'append.pgbench.missing' });
  }
  try {
    // Migrations run when the first context starts; a short discarded run warms up JIT and server.
    const warm = await storeAppender(database.url, 8);
    await drive({ ...settings, seconds: 1, warmupSeconds: 1 }, 8, 1, warm.append);
    await warm.close();
    await createBaselineTables(database.url);
    for (const [concurrency, batch] of settings.configurations) {
      const label = `${batch === 1 ? 'single-event' : `${batch}-event`} appends, concurrency ${concurrency}`;
      const key = `append.c${concurrency}.x${batch}`;
      // The store first: it is the one writer whose start can fail, before any pool or file exists.
      const storeWriter = await storeAppender(database.url, concurrency);
      const bench = pgbench && batch === 1 ? pgbenchRunner(pgbench, database.url, settings.streams) : undefined;
      const writers: Writer[] = [
        driven('pg, one prepared INSERT per append', 'pg-insert', preparedInsertAppender(database.url, concurrency), concurrency, batch),
        driven(
          'pg, BEGIN/SELECT/INSERT/COMMIT (prepared)',
          'pg-transaction',
          transactionAppender(database.url, concurrency),
          concurrency,
          batch,
        ),
        ...(bench
          ? [
              {
                name: 'pgbench, one prepared INSERT per transaction',
                key: 'pgbench',
                round: (perRound: { seconds: number }) => bench.run(concurrency, perRound.seconds),
                close: bench.close,
                rounds: [],
              },
            ]
          : []),
        driven('event store', 'store', storeWriter, concurrency, batch),
      ];
      console.error(`append: ${label}: ${writers.map((writer) => writer.name).join(', ')}, ${settings.rounds} alternating rounds…`);
      const perRound = { streams: settings.streams, seconds: settings.seconds / settings.rounds, warmupSeconds: settings.warmupSeconds };
      try {
        for (let index = 0; index < settings.rounds; index++) {
          // Alternate which writer goes first, too.
          const order = index % 2 === 0 ? writers : [...writers].reverse();
          for (const writer of order) writer.rounds.push(await writer.round(perRound));
        }
      } finally {
        for (const writer of writers) await writer.close();
      }
      const measured = Object.fromEntries(writers.map((writer) => [writer.key, merge(writer.rounds, batch)])) as Record<string, Measured>;
      const store = measured.store;
      const ratio = (other: string) => (measured[other] ? round(store.eventsPerSecond / measured[other].eventsPerSecond, 3) : undefined);
      for (const writer of writers) {
        const result = measured[writer.key];
        report(`${label}: ${writer.name}`, round(result.eventsPerSecond), 'events/s', {
          group: 'append',
          key: `${key}.${writer.key}`,
          concurrency,
          eventsPerAppend: batch,
          // pgbench's figure is its latency average (no per-transaction latencies): shown as p50, no p99.
          ...(writer.key === 'pgbench'
            ? { latencyAverageMs: round(result.p50, 2) }
            : { p50Ms: round(result.p50, 2), p99Ms: round(result.p99, 2) }),
          appends: result.appends,
          ...(writer.key === 'store'
            ? { ratioToBaseline: ratio('pg-insert'), ratioToTransaction: ratio('pg-transaction'), ratioToPgbench: ratio('pgbench') }
            : {}),
        });
      }
    }
  } finally {
    await database.close();
  }
}

if (isMain(import.meta.url)) {
  const server = await openBenchServer();
  try {
    console.error(JSON.stringify(await describeMachine(server.url)));
    await runAppendBench(server);
  } catch (error) {
    console.error(error);
    process.exitCode = 1;
  } finally {
    await server.close();
  }
}
