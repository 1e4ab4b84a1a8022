import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { type AppProcess, call, startAppProcess } from './support/app-process.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

/**
 * SIGTERM as Kubernetes sends it, to the compiled service in a child process: readiness turns 503
 * first while everything else is still served for SHUTDOWN_DELAY_MS, then the service drains and
 * exits 0 with its projection leases released; a stop that outlasts SHUTDOWN_TIMEOUT_MS exits 1.
 */
let database: TestDatabase;
let service: AppProcess | undefined;

async function leaseOwners(): Promise<Array<{ name: string; lease_owner: string | null }>> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    return (await client.query('SELECT name, lease_owner FROM projection_checkpoints ORDER BY name')).rows;
  } finally {
    await client.end();
  }
}

async function exitOf(app: AppProcess): Promise<{ code: number | null; signal: string | null }> {
  if (app.child.exitCode === null && app.child.signalCode === null) await once(app.child, 'exit');
  return { code: app.child.exitCode, signal: app.child.signalCode };
}

beforeAll(async () => {
  database = await createTestDatabase();
});
// After each test: a test that failed leaves its service running, and the next one would start another.
afterEach(async () => {
  await service?.kill();
  service = undefined;
});
afterAll(async () => {
  await database?.drop();
});

describe('SIGTERM', () => {
  it('turns readiness 503 at once, keeps serving during SHUTDOWN_DELAY_MS, then exits 0 with the leases released', async () => {
    // A delay long enough that a loaded machine still probes inside it; nothing asserts how fast.
    service = await startAppProcess(database.url, { SHUTDOWN_DELAY_MS: '4000', SHUTDOWN_TIMEOUT_MS: '60000' });
    const app = service;
    expect((await fetch(`${app.url}/health/ready`)).status).toBe(200);
    const deadline = Date.now() + 20_000;
    while ((await leaseOwners()).some((row) => row.lease_owner === null)) {
      if (Date.now() > deadline) throw new Error(`the runners did not take their leases: ${JSON.stringify(await leaseOwners())}`);
      await sleep(100);
    }

    app.child.kill('SIGTERM');
    let ready: Response | undefined;
    while (!ready || ready.status === 200) {
      if (Date.now() > deadline + 10_000) throw new Error('readiness never turned 503');
      ready = await fetch(`${app.url}/health/ready`);
    }
    expect(ready.status).toBe(503);
    expect(ready.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const problem = (await ready.json()) as { code: string; failing: string[] };
    expect(problem).toEqual(expect.objectContaining({ code: 'NOT_READY', failing: ['shutdown'] }));
    // Still serving everything else: the load balancer is only being told to stop sending.
    expect((await fetch(`${app.url}/health/live`)).status).toBe(200);
    expect((await call(app.url, 'POST', '/accounts', { ownerName: 'Late', currency: 'EUR' })).status).toBe(201);
    expect(app.child.exitCode).toBeNull();

    expect(await exitOf(app)).toEqual({ code: 0, signal: null });
    expect(app.output()).toContain('SIGTERM received: readiness now 503');
    const after = await leaseOwners();
    expect(after.length).toBeGreaterThan(0);
    expect(after.filter((row) => row.lease_owner !== null)).toEqual([]);
    service = undefined;
  });

  it('ends a shutdown still running after SHUTDOWN_TIMEOUT_MS with exit code 1', async () => {
    // The drain waits longer than the hard limit allows: the limit must win.
    service = await startAppProcess(database.url, { SHUTDOWN_DELAY_MS: '600000', SHUTDOWN_TIMEOUT_MS: '1000' });
    const app = service;
    app.child.kill('SIGTERM');
    expect(await exitOf(app)).toEqual({ code: 1, signal: null });
    expect(app.output()).toContain('SHUTDOWN_TIMEOUT_MS');
    service = undefined;
  });
});
