import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AppProcess, startAppProcess } from './support/app-process.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

/**
 * Review 2: a second SIGTERM (or a SIGINT after a SIGTERM) during the drain. The handlers were
 * registered with process.once, so a second SIGTERM found none and killed the process by the
 * signal's default action: no drain, leases held until their TTL, the embedded database not stopped.
 */
describe('a second signal during the drain', () => {
  let database: TestDatabase;
  let service: AppProcess | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
  }, 60_000);

  afterAll(async () => {
    await service?.kill();
    await database?.drop();
  });

  it('keeps draining and exits 0', async () => {
    service = await startAppProcess(database.url, { SHUTDOWN_DELAY_MS: '1500', SHUTDOWN_TIMEOUT_MS: '30000' });
    const app = service;
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      app.child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    app.child.kill('SIGTERM');
    await sleep(300);
    app.child.kill('SIGTERM');
    expect(await exit).toEqual({ code: 0, signal: null });
    expect(app.output()).toContain('Stopped');
    service = undefined;
  }, 60_000);
});
