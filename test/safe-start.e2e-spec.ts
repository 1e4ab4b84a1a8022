import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { PROJECTOR_DATA_SOURCE, QUERY_DATA_SOURCE } from '../src/event-sourcing/index.js';
import { distPath } from './support/app-process.js';
import { type TestApp, startTestApp } from './support/test-app.js';
import { createTestDatabase } from './support/test-database.js';

/** Runs the compiled service in an empty directory with exactly `env`; resolves when it exits. */
function runService(env: Record<string, string>, timeoutMs = 30_000): Promise<{ code: number | null; output: string; cwd: string }> {
  const cwd = mkdtempSync(join(tmpdir(), 'ledger-start-'));
  const child = spawn(process.execPath, [distPath('src', 'main.js')], {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output, cwd });
    }),
  );
}

async function tablesOf(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string }>(
      `SELECT table_name AS name FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')`,
    );
    return rows.map((row) => row.name);
  } finally {
    await client.end();
  }
}

describe('a safe production start', () => {
  it('refuses NODE_ENV=production without DATABASE_URL, naming it, and starts no embedded server', async () => {
    const { code, output, cwd } = await runService({ NODE_ENV: 'production', JWT_SECRET: 's'.repeat(40) });
    try {
      expect(code).not.toBe(0);
      expect(output).toMatch(/Cannot start: .*DATABASE_URL must be set in production/);
      expect(existsSync(join(cwd, '.data'))).toBe(false); // no embedded data directory was created
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('with MIGRATIONS_RUN=false does not migrate an empty database, and refuses to start on it', async () => {
    const database = await createTestDatabase();
    try {
      await expect(startTestApp({ MIGRATIONS_RUN: 'false' }, database)).rejects.toThrow(
        /migration\(s\) not applied .*MIGRATIONS_RUN=false/,
      );
      expect(await tablesOf(database.url)).toEqual([]); // not even TypeORM's migrations table
      // Migrated (by an instance with the default, MIGRATIONS_RUN=true), it starts without migrating.
      const migrating = await startTestApp({}, database);
      await migrating.close();
      const notMigrating = await startTestApp({ MIGRATIONS_RUN: 'false' }, database);
      try {
        expect((await notMigrating.http.get('/accounts')).status).toBe(200);
      } finally {
        await notMigrating.close();
      }
    } finally {
      await database.drop();
    }
  });

  it('refuses with MIGRATIONS_RUN=false when the database is behind this build', async () => {
    const database = await createTestDatabase();
    try {
      const migrating = await startTestApp({}, database);
      await migrating.dataSource.query(`DELETE FROM typeorm_migrations WHERE name = 'WakeReadersAfterCommit1764230400017'`);
      await migrating.close();
      await expect(startTestApp({ MIGRATIONS_RUN: 'false' }, database)).rejects.toThrow(
        /1 migration\(s\) not applied \(WakeReadersAfterCommit1764230400017\)/,
      );
    } finally {
      await database.drop();
    }
  });
});

describe('connection timeouts', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ DATABASE_STATEMENT_TIMEOUT_MS: '1000', DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '300' });
  });
  afterAll(async () => t?.close());

  it('are set on every side of the service', async () => {
    for (const side of [t.dataSource, t.app.get<DataSource>(QUERY_DATA_SOURCE), t.app.get<DataSource>(PROJECTOR_DATA_SOURCE)]) {
      expect(await side.query('SHOW statement_timeout')).toEqual([{ statement_timeout: '1s' }]);
      expect(await side.query('SHOW idle_in_transaction_session_timeout')).toEqual([{ idle_in_transaction_session_timeout: '300ms' }]);
    }
  });

  it('end a transaction left idle longer than the timeout: the server closes its session', async () => {
    const runner = t.dataSource.createQueryRunner();
    await runner.connect();
    try {
      await runner.startTransaction();
      const [{ pid }] = (await runner.query('SELECT pg_backend_pid() AS pid')) as Array<{ pid: number }>;
      await sleep(1200); // idle in the transaction, well past 300 ms
      // The server ended that session (TypeORM then drops the runner: whichever error comes first).
      const alive = (await t.dataSource.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [pid])) as Array<{
        n: number;
      }>;
      expect(alive).toEqual([{ n: 0 }]);
      await expect(runner.query('SELECT 1')).rejects.toThrow(
        /idle-in-transaction timeout|terminating connection|Connection terminated|released/,
      );
    } finally {
      await runner.release().catch(() => undefined);
    }
    // The pool replaces the dead connection: the service goes on.
    expect((await t.http.post('/accounts').send({ ownerName: 'After', currency: 'EUR' })).status).toBe(201);
  });

  it('cancel a statement that runs longer than the statement timeout', async () => {
    await expect(t.dataSource.query('SELECT pg_sleep(3)')).rejects.toThrow(/statement timeout/);
  });

  it('leave the long-lived ones working: the LISTEN connection idles outside a transaction, rebuilds swap', async () => {
    await sleep(1200);
    const rows: Array<{ listening: number }> = await t.dataSource.query(
      // The LISTEN connection also sends this instance's wake-up NOTIFYs: its last statement is either.
      `SELECT count(*)::int AS listening FROM pg_stat_activity
        WHERE datname = current_database() AND state = 'idle' AND backend_start < now() - interval '1 second'
          AND (query LIKE 'LISTEN%' OR query = 'SELECT pg_notify($1, $2)')`,
    );
    expect(rows[0].listening).toBeGreaterThanOrEqual(1);
    const opened = await t.http.post('/accounts').send({ ownerName: 'Rebuilt', currency: 'EUR' });
    expect(opened.status).toBe(201);
    expect((await t.http.post('/admin/projections/account-summary/rebuild')).status).toBe(202);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const status = await t.http.get('/admin/projections/account-summary');
      if (status.body.rebuild === null && status.body.lastRebuildCompletedAt !== null) break;
      if (Date.now() > deadline) throw new Error(`rebuild did not finish: ${JSON.stringify(status.body)}`);
      await sleep(100);
    }
    const read = await t.http.get(`/accounts/${opened.body.id}`).query({ minPosition: opened.body.position });
    expect(read.status).toBe(200);
  });
});
