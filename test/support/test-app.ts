import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { createApp } from '../../src/app.factory.js';
import { type AppConfig, loadConfig } from '../../src/config/app-config.js';
import { testToken } from './auth.js';
import { type TestDatabase, createTestDatabase } from './test-database.js';

export interface TestApp {
  readonly app: INestApplication;
  /** Requests with a bearer token holding every scope (see ./auth.ts). */
  readonly http: InstanceType<typeof request.agent>;
  /** Requests with no Authorization header. */
  readonly anonymous: ReturnType<typeof request>;
  readonly dataSource: DataSource;
  readonly database: TestDatabase;
  close(): Promise<void>;
}

/**
 * The service exactly as main.ts builds it (createApp), on a fresh database of the test server.
 * `env` overrides configuration variables the way the environment would. Rate limiting is off unless
 * `env` turns it on (one test client sends far more than a real client's budget).
 */
export async function startTestApp(env: Record<string, string> = {}, database?: TestDatabase): Promise<TestApp> {
  const db = database ?? (await createTestDatabase());
  // READ_YOUR_WRITES_TIMEOUT_MS: every test file shares one PostgreSQL server, and the commit-safe
  // horizon is server-wide, so a file that holds a transaction open on purpose holds every other
  // file's projections back meanwhile; 2 s was sometimes not enough for an honest read-your-writes
  // wait under the full parallel suite. Tests of the timeout set their own.
  // One segment per projection unless a test asks for more: the suites written before segments look
  // at a projection's single row (segments: test/projection-segments.int-spec.ts).
  const config: AppConfig = loadConfig({
    RATE_LIMIT_ENABLED: 'false',
    READ_YOUR_WRITES_TIMEOUT_MS: '15000',
    PROJECTION_SEGMENTS: '1',
    ...env,
  });
  const app = await createApp(config, db.url, { logger: false });
  return {
    app,
    http: request.agent(app.getHttpServer()).set('Authorization', `Bearer ${testToken()}`),
    anonymous: request(app.getHttpServer()),
    dataSource: app.get(DataSource),
    database: db,
    async close() {
      await app.close();
      if (!database) await db.drop();
    },
  };
}
