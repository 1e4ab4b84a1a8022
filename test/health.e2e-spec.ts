import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { expectProblemAnswer } from './support/problem.js';
import { eventually } from './support/projection-fixtures.js';
import { type TestApp, startTestApp } from './support/test-app.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

/** Runs `statement` on the test server's maintenance connection (not inside the database it targets). */
async function onServer(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

const nameOf = (database: TestDatabase) => new URL(database.url).pathname.slice(1);

/** Makes a database unreachable for the service: no new connections, and every open one ended. */
async function takeDown(database: TestDatabase): Promise<void> {
  await onServer(`ALTER DATABASE ${nameOf(database)} ALLOW_CONNECTIONS false`);
  await onServer(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${nameOf(database)}'`);
}

async function bringUp(database: TestDatabase): Promise<void> {
  await onServer(`ALTER DATABASE ${nameOf(database)} ALLOW_CONNECTIONS true`);
}

describe('probes', () => {
  let t: TestApp;
  let queryDatabase: TestDatabase;
  beforeAll(async () => {
    // The query side on a database of its own (empty: readiness only pings it), so that one side can
    // fail while the others answer. Rate limiting on, at one query a minute: probes are never limited.
    queryDatabase = await createTestDatabase();
    t = await startTestApp({ QUERY_DATABASE_URL: queryDatabase.url, RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_QUERIES_PER_MINUTE: '1' });
  });
  afterAll(async () => {
    await t?.close();
    await bringUp(queryDatabase).catch(() => undefined);
    await queryDatabase?.drop();
  });

  it('answer without a token and are never rate limited', async () => {
    // Ready once first: right after start, on a machine loaded by other suites, a pool's first
    // connection can take longer than the probe's 1 s check (seen once in CI: 503 NOT_READY).
    await eventually('ready after start', async () => ((await t.anonymous.get('/health/ready')).status === 200 ? true : undefined));
    for (let i = 0; i < 5; i++) {
      expect((await t.anonymous.get('/health/live')).status).toBe(200);
      const ready = await t.anonymous.get('/health/ready');
      expect({ status: ready.status, body: ready.status === 200 ? undefined : ready.body }).toEqual({ status: 200, body: undefined });
    }
  });

  it('ready: every database side up, projection lag in the details', async () => {
    const ready = await t.anonymous.get('/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe('ok');
    for (const side of ['database-command', 'database-query', 'database-projector', 'shutdown']) {
      expect(ready.body.details[side]).toEqual(expect.objectContaining({ status: 'up' }));
    }
    expect(ready.body.details.projections).toEqual(
      expect.objectContaining({
        status: 'up',
        'account-summary': { status: 'running', lagEvents: expect.any(Number), lagMs: expect.any(Number) },
      }),
    );
  });

  it('ready turns 503 problem+json naming the side whose database is unreachable, live stays 200, and recovers', async () => {
    await takeDown(queryDatabase);
    try {
      const ready = await t.anonymous.get('/health/ready');
      const problem = expectProblemAnswer(ready, 503, 'NOT_READY');
      expect(problem.failing).toEqual(['database-query']);
      expect(problem.detail).toContain('database-query');
      expect(problem.details['database-command'].status).toBe('up');
      expect((await t.anonymous.get('/health/live')).status).toBe(200);
    } finally {
      await bringUp(queryDatabase);
    }
    const deadline = Date.now() + 15_000;
    while ((await t.anonymous.get('/health/ready')).status !== 200) {
      if (Date.now() > deadline) throw new Error('readiness did not recover');
      await sleep(100);
    }
  });

  it('ready fails every side on the main database when it stops answering', async () => {
    await takeDown(t.database);
    try {
      const problem = expectProblemAnswer(await t.anonymous.get('/health/ready'), 503, 'NOT_READY');
      expect(problem.failing).toEqual(expect.arrayContaining(['database-command', 'database-projector']));
      expect(problem.failing).not.toContain('database-query');
    } finally {
      await bringUp(t.database);
    }
  });
});
