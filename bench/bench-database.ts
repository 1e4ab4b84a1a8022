import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { EmbeddedDatabase } from '../src/database/embedded-database.js';

/**
 * A PostgreSQL for a benchmark run, like the tests: BENCH_DATABASE_URL if given (a server where the
 * user may CREATE DATABASE), otherwise an embedded server in a temporary directory, removed after.
 */
export interface BenchDatabase {
  readonly url: string;
  close(): Promise<void>;
}

/** One server for a whole run (`npm run bench`): a fresh database per benchmark, dropped after. */
export interface BenchServer {
  readonly url: string;
  database(name: string): Promise<BenchDatabase>;
  close(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function admin<T>(serverUrl: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export async function openBenchServer(): Promise<BenchServer> {
  let serverUrl = process.env.BENCH_DATABASE_URL;
  let embedded: EmbeddedDatabase | undefined;
  let parent: string | undefined;
  if (!serverUrl) {
    parent = mkdtempSync(join(tmpdir(), 'ledger-bench-'));
    chmodSync(parent, 0o755);
    embedded = await EmbeddedDatabase.start({ dir: join(parent, 'postgres'), port: await freePort(), database: 'postgres' });
    serverUrl = embedded.url;
  }
  const base = serverUrl;
  const open = new Set<string>();
  return {
    url: base,
    async database(name: string) {
      await admin(base, async (client) => {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await client.query(`CREATE DATABASE ${name}`);
      });
      open.add(name);
      const url = new URL(base);
      url.pathname = `/${name}`;
      return {
        url: url.toString(),
        async close() {
          if (!open.delete(name)) return;
          await admin(base, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
        },
      };
    },
    async close() {
      for (const name of [...open]) {
        await admin(base, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).catch(() => undefined);
        open.delete(name);
      }
      await embedded?.stop();
      if (parent) rmSync(parent, { recursive: true, force: true });
    },
  };
}

/** A server with one database, for a benchmark run on its own (npm run bench:projections …). */
export async function openBenchDatabase(name: string): Promise<BenchDatabase> {
  const server = await openBenchServer();
  try {
    const database = await server.database(name);
    return {
      url: database.url,
      async close() {
        await database.close();
        await server.close();
      },
    };
  } catch (error) {
    await server.close();
    throw error;
  }
}

export async function describeMachine(url: string): Promise<Record<string, string | number>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const { rows } = await client.query<{
    version: string;
    fsync: string;
    synchronous_commit: string;
    shared_buffers: string;
    max_connections: string;
  }>(
    `SELECT version() AS version, current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS synchronous_commit,
            current_setting('shared_buffers') AS shared_buffers, current_setting('max_connections') AS max_connections`,
  );
  await client.end();
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    postgres: rows[0].version.split(',')[0],
    fsync: rows[0].fsync,
    synchronousCommit: rows[0].synchronous_commit,
    sharedBuffers: rows[0].shared_buffers,
    embedded: process.env.BENCH_DATABASE_URL ? 'no' : 'yes',
    /** Other work on the machine skews every figure: the 1-minute load average when the run started. */
    loadAverage1m: round(loadavg()[0], 2),
  };
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** One measured figure of a run: printed as a JSON line, collected into bench/results/<date>.json. */
export interface Figure {
  readonly group: string;
  readonly figure: string;
  readonly value: number | string;
  readonly unit: string;
  readonly [extra: string]: unknown;
}

/** Every figure reported in this process, in order (the runner collects them). */
export const reported: Figure[] = [];

/** One JSON line per figure, so results can be collected by a script. */
export function report(figure: string, value: number | string, unit: string, extra: Record<string, unknown> = {}): Figure {
  const entry: Figure = { group: typeof extra.group === 'string' ? extra.group : 'misc', figure, value, unit, ...extra };
  reported.push(entry);
  console.log(JSON.stringify(entry));
  return entry;
}

/** Whether this module is the script node was started with (a benchmark run on its own). */
export function isMain(moduleUrl: string): boolean {
  return process.argv[1] !== undefined && fileURLToPath(moduleUrl) === resolve(process.argv[1]);
}

export const round = (value: number, digits = 0): number => Number(value.toFixed(digits));
