// Append benchmark (issue 7, part 1): EventStore.append with an exact expected version, against the
// same rows and constraints inserted with plain `pg` (BEGIN; read the stream's version; INSERT;
// COMMIT) on a pool of the same size, in the same run and into the same events table.
//   npm run bench:append             (BENCH_APPEND_SECONDS, BENCH_APPEND_STREAMS to change)
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
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

/**
 * The baseline: plain pg, the same rows (same type, data and metadata JSON, a new event id each) and
 * the same table with all its constraints, triggers and indexes. BEGIN; SELECT the stream's version;
 * refuse on a mismatch; INSERT the rows; COMMIT. `prepared`: named statements (planned once per
 * connection), as a careful hand-written writer would use them; otherwise pg's default unnamed ones.
 */
function pgAppender(url: string, poolSize: number, prepared: boolean): { append: Append; close: () => Promise<void> } {
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  const insertText = (count: number) =>
    `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata) VALUES ${Array.from(
      { length: count },
      (_, row) => `(${[1, 2, 3, 4, 5, 6, 7].map((column) => `$${row * 7 + column}`).join(', ')})`,
    ).join(', ')} RETURNING position`;
  const inserts = new Map<number, string>();
  return {
    append: async (streamId, expected, count) => {
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
      if (!inserts.has(count)) inserts.set(count, insertText(count));
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const { rows } = await client.query<{ version: number }>({
          ...(prepared ? { name: 'bench-stream-version' } : {}),
          text: 'SELECT coalesce(max(version), 0) AS version FROM events WHERE stream_id = $1',
          values: [streamId],
        });
        if (rows[0].version !== expected) throw new Error(`${streamId}: expected version ${expected}, found ${rows[0].version}`);
        await client.query({ ...(prepared ? { name: `bench-insert-${count}` } : {}), text: inserts.get(count)!, values });
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

/** Runs part 1 on a fresh database of `server`; returns after reporting every figure. */
export async function runAppendBench(server: BenchServer, settings = appendSettings()): Promise<void> {
  const database = await server.database('ledger_bench_append');
  try {
    // Migrations run when the first context starts; a short discarded run warms up JIT and server.
    const warm = await storeAppender(database.url, 8);
    await drive({ ...settings, seconds: 1, warmupSeconds: 1 }, 8, 1, warm.append);
    await warm.close();
    for (const [concurrency, batch] of settings.configurations) {
      const label = `${batch === 1 ? 'single-event' : `${batch}-event`} appends, concurrency ${concurrency}`;
      const key = `append.c${concurrency}.x${batch}`;
      // The unnamed-statement baseline is shown once, at the concurrency the target is about.
      const writers: Array<{ name: string; append: Append; close: () => Promise<void>; rounds: Round[] }> = [
        { name: 'pg baseline (prepared statements)', ...pgAppender(database.url, concurrency, true), rounds: [] },
        ...(concurrency === 32 && batch === 1
          ? [{ name: 'pg baseline (unnamed statements)', ...pgAppender(database.url, concurrency, false), rounds: [] }]
          : []),
        { name: 'event store', ...(await storeAppender(database.url, concurrency)), rounds: [] },
      ];
      console.error(`append: ${label}: ${writers.map((writer) => writer.name).join(', ')}, ${settings.rounds} alternating rounds…`);
      const perRound = { streams: settings.streams, seconds: settings.seconds / settings.rounds, warmupSeconds: settings.warmupSeconds };
      for (let index = 0; index < settings.rounds; index++) {
        // Alternate which writer goes first, too.
        const order = index % 2 === 0 ? writers : [...writers].reverse();
        for (const writer of order) writer.rounds.push(await drive(perRound, concurrency, batch, writer.append));
      }
      for (const writer of writers) await writer.close();
      const measured = merge(writers.at(-1)!.rounds, batch);
      const results = writers.slice(0, -1).map((writer) => [writer.name, merge(writer.rounds, batch)] as [string, Measured]);
      const baseline = results[0][1];
      report(`${label}: event store`, round(measured.eventsPerSecond), 'events/s', {
        group: 'append',
        key: `${key}.store`,
        concurrency,
        eventsPerAppend: batch,
        p50Ms: round(measured.p50, 2),
        p99Ms: round(measured.p99, 2),
        appends: measured.appends,
        ratioToBaseline: round(measured.eventsPerSecond / baseline.eventsPerSecond, 3),
      });
      for (const [name, result] of results) {
        report(`${label}: ${name}`, round(result.eventsPerSecond), 'events/s', {
          group: 'append',
          key: `${key}.${name.includes('unnamed') ? 'pg-unnamed' : 'pg'}`,
          concurrency,
          eventsPerAppend: batch,
          p50Ms: round(result.p50, 2),
          p99Ms: round(result.p99, 2),
          appends: result.appends,
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
