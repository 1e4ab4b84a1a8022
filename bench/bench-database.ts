import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
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

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export async function openBenchDatabase(name: string): Promise<BenchDatabase> {
  let serverUrl = process.env.BENCH_DATABASE_URL;
  let embedded: EmbeddedDatabase | undefined;
  let parent: string | undefined;
  if (!serverUrl) {
    parent = mkdtempSync(join(tmpdir(), 'ledger-bench-'));
    chmodSync(parent, 0o755);
    embedded = await EmbeddedDatabase.start({ dir: join(parent, 'postgres'), port: await freePort(), database: 'postgres' });
    serverUrl = embedded.url;
  }
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async close() {
      const client = new pg.Client({ connectionString: serverUrl });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
      await embedded?.stop();
      if (parent) rmSync(parent, { recursive: true, force: true });
    },
  };
}

export async function describeMachine(url: string): Promise<Record<string, string | number>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const { rows } = await client.query<{ version: string; fsync: string }>(
    `SELECT version() AS version, current_setting('fsync') AS fsync`,
  );
  await client.end();
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    postgres: rows[0].version.split(',')[0],
    fsync: rows[0].fsync,
    embedded: process.env.BENCH_DATABASE_URL ? 'no' : 'yes',
  };
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** One JSON line per figure, so results can be collected by a script. */
export function report(figure: string, value: number | string, unit: string, extra: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ figure, value, unit, ...extra }));
}
