import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { productionNodeFlags } from '../bench/production-node-flags.js';
import { type AppProcess, call, startAppProcess } from './support/app-process.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

// Issue 14 (peak RSS): the service runs with V8 heap flags, set where it starts (package.json's
// start and start:prod, the production command of docs/operations.md, the HTTP benchmark), and
// loads no optional client it was not configured for. Memory itself is measured by the benchmark.
const ROOT = join(import.meta.dirname, '..');
const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
const FLAGS = productionNodeFlags(ROOT);

describe('the production start', () => {
  it('start:prod sets the V8 heap flags, and npm start and the documented production command use the same', () => {
    expect(FLAGS).toEqual(expect.arrayContaining([expect.stringMatching(/^--max-semi-space-size=\d+$/)]));
    expect(scripts['start:prod']).toBe(`node ${FLAGS.join(' ')} dist/src/main.js`);
    expect(scripts.start).toContain(`--exec "node ${FLAGS.join(' ')}"`);
    expect(readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8')).toContain(`node ${FLAGS.join(' ')} dist/src/main.js`);
  });

  describe('the compiled service started with those flags, without NATS_URL', () => {
    let database: TestDatabase;
    let app: AppProcess;
    beforeAll(async () => {
      database = await createTestDatabase();
      app = await startAppProcess(database.url, {}, [...FLAGS, '--require', join(ROOT, 'test', 'support', 'loaded-packages.cjs')]);
    });
    afterAll(async () => {
      await app?.stop();
      await database?.drop();
    });

    it('serves commands, queries and the OpenAPI document (built on the first request for it)', async () => {
      const opened = await call(app.url, 'POST', '/accounts', { ownerName: 'Ada Lovelace', currency: 'EUR' });
      expect(opened.status).toBe(201);
      const deposit = await call(app.url, 'POST', `/accounts/${opened.body.id}/deposits`, { amount: 250 });
      expect(deposit.status).toBe(200);
      const document = await call(app.url, 'GET', '/docs-json');
      expect(document.status).toBe(200);
      expect(Object.keys(document.body.paths)).toContain('/accounts/{id}/deposits');
      expect((await call(app.url, 'GET', '/docs-json')).body).toEqual(document.body); // the same document, kept
    });

    it('never loads the NATS client, the OpenTelemetry SDK or the command-line framework', async () => {
      await app.stop();
      const line = /LOADED_PACKAGES (.+)/.exec(app.output());
      expect(line).not.toBeNull();
      const loaded = JSON.parse(line![1]) as string[];
      expect(loaded).toEqual(expect.arrayContaining(['@nestjs/core', 'typeorm', 'pg'])); // the probe sees what is loaded
      expect(loaded.filter((name) => /^@nats-io\/|^@opentelemetry\/sdk-|^nest-commander$/.test(name))).toEqual([]);
    });
  });
});
