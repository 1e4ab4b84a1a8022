import { availableParallelism } from 'node:os';
import { describe, expect, it } from '@jest/globals';
import { ConfigError, DEVELOPMENT_JWT_SECRET, loadConfig } from './app-config.js';

describe('loadConfig', () => {
  it('has working defaults for a clean checkout', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3000,
      logLevel: 'log',
      logFormat: 'pretty',
      databaseUrl: undefined,
      databaseSchema: 'public',
      sideDatabaseUrls: { command: undefined, query: undefined, projector: undefined },
      databasePoolSize: 10,
      embeddedDatabase: { port: 54329 },
      bodyLimitBytes: 102400,
      commandMaxAttempts: 10,
      appendGroupStatements: 1,
      aggregateCacheSize: 10_000,
      commandLaneMaxWaitMs: 5000,
      readYourWritesTimeoutMs: 2000,
      migrationsRun: true,
      databaseTimeouts: { statementMs: 30_000, idleInTransactionMs: 10_000 },
      shutdown: { delayMs: 0, timeoutMs: 25_000 },
      nats: undefined,
      liveFeed: { heartbeatMs: 15_000, stallTimeoutMs: 10_000, maxConnectionsPerClient: 10, maxConnections: 1000 },
      projections: {
        enabled: true,
        pollIntervalMs: 1000,
        batchSize: 500,
        batchWindowMs: 0,
        maxAttempts: 5,
        retryBaseMs: 200,
        leaseTtlMs: 10_000,
        idleSegmentDelayMs: 50,
        // Two per core (a segment mostly waits on round trips), at most 16.
        segments: { default: Math.min(16, availableParallelism() * 2), byName: {} },
        reactionConcurrency: 4,
      },
    });
    expect(config.embeddedDatabase.dir).toMatch(/\.data\/postgres$/);
    expect(config.transfers).toEqual({ maxBacklog: 10_000, backlogRefreshMs: 1000 });
    expect(config.metricsPort).toBeUndefined();
  });

  it('reads every variable', () => {
    const config = loadConfig({
      PORT: '8080',
      LOG_LEVEL: 'debug',
      LOG_FORMAT: 'json',
      JWT_SECRET: 'a-secret-of-at-least-thirty-two-characters',
      JWT_ISSUER: 'https://id.example',
      JWT_AUDIENCE: 'ledger',
      RATE_LIMIT_ENABLED: 'false',
      RATE_LIMIT_COMMANDS_PER_MINUTE: '10',
      RATE_LIMIT_QUERIES_PER_MINUTE: '20',
      CORS_ORIGINS: 'https://a.example, https://b.example',
      DATABASE_URL: 'postgresql://u:p@db:5432/ledger',
      COMMAND_DATABASE_URL: 'postgresql://writer:p@db:5432/ledger',
      QUERY_DATABASE_URL: 'postgres://reader:p@replica:5432/ledger',
      PROJECTOR_DATABASE_URL: 'postgresql://projector:p@db:5432/ledger',
      DATABASE_SCHEMA: 'ledger_main',
      DATABASE_POOL_SIZE: '20',
      EMBEDDED_DATABASE_DIR: '/var/tmp/pg',
      EMBEDDED_DATABASE_PORT: '6000',
      BODY_LIMIT_BYTES: '2048',
      COMMAND_MAX_ATTEMPTS: '3',
      APPEND_GROUP_STATEMENTS: '2',
      AGGREGATE_CACHE_SIZE: '250',
      COMMAND_LANE_MAX_WAIT_MS: '750',
      READ_YOUR_WRITES_TIMEOUT_MS: '500',
      IDEMPOTENCY_KEY_TTL_HOURS: '48',
      SNAPSHOT_INTERVALS: 'account:50, transfer:0',
      LIVE_FEED_HEARTBEAT_MS: '5000',
      LIVE_FEED_STALL_TIMEOUT_MS: '3000',
      LIVE_FEED_MAX_CONNECTIONS_PER_CLIENT: '2',
      LIVE_FEED_MAX_CONNECTIONS: '50',
      PROJECTIONS_ENABLED: 'false',
      PROJECTION_POLL_INTERVAL_MS: '250',
      PROJECTION_BATCH_SIZE: '100',
      PROJECTION_BATCH_WINDOW_MS: '20',
      PROJECTION_MAX_ATTEMPTS: '3',
      PROJECTION_RETRY_BASE_MS: '50',
      PROJECTION_LEASE_TTL_MS: '2000',
      PROJECTION_WAKE_SIGNAL_MS: '25',
      PROJECTION_IDLE_SEGMENT_DELAY_MS: '20',
      PROJECTION_SEGMENTS: '8',
      PROJECTION_SEGMENTS_TRANSFER_PROCESS: '1',
      PROJECTION_REACTION_CONCURRENCY: '6',
      TRANSFER_MAX_BACKLOG: '500',
      TRANSFER_BACKLOG_REFRESH_MS: '250',
      MIGRATIONS_RUN: 'false',
      DATABASE_STATEMENT_TIMEOUT_MS: '5000',
      DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '0',
      METRICS_PORT: '9464',
      SHUTDOWN_DELAY_MS: '5000',
      SHUTDOWN_TIMEOUT_MS: '20000',
      NATS_URL: 'nats://broker-a:4222,tls://broker-b:4222',
      NATS_STREAM: 'LEDGER_EU',
      NATS_PUBLISH_CONCURRENCY: '64',
    });
    expect(config).toEqual({
      port: 8080,
      logLevel: 'debug',
      logFormat: 'json',
      production: false,
      auth: {
        key: { kind: 'secret', secret: 'a-secret-of-at-least-thirty-two-characters', isDevelopmentDefault: false },
        algorithms: ['HS256'],
        issuer: 'https://id.example',
        audience: 'ledger',
      },
      rateLimit: { enabled: false, commandsPerMinute: 10, queriesPerMinute: 20 },
      corsOrigins: ['https://a.example', 'https://b.example'],
      idempotencyKeyTtlHours: 48,
      liveFeed: { heartbeatMs: 5000, stallTimeoutMs: 3000, maxConnectionsPerClient: 2, maxConnections: 50 },
      snapshotIntervals: { account: 50, transfer: 0 },
      databaseUrl: 'postgresql://u:p@db:5432/ledger',
      sideDatabaseUrls: {
        command: 'postgresql://writer:p@db:5432/ledger',
        query: 'postgres://reader:p@replica:5432/ledger',
        projector: 'postgresql://projector:p@db:5432/ledger',
      },
      databaseSchema: 'ledger_main',
      databasePoolSize: 20,
      migrationsRun: false,
      databaseTimeouts: { statementMs: 5000, idleInTransactionMs: 0 },
      metricsPort: 9464,
      shutdown: { delayMs: 5000, timeoutMs: 20_000 },
      embeddedDatabase: { dir: '/var/tmp/pg', port: 6000 },
      bodyLimitBytes: 2048,
      commandMaxAttempts: 3,
      appendGroupStatements: 2,
      aggregateCacheSize: 250,
      commandLaneMaxWaitMs: 750,
      readYourWritesTimeoutMs: 500,
      nats: { url: 'nats://broker-a:4222,tls://broker-b:4222', stream: 'LEDGER_EU', publishConcurrency: 64 },
      projections: {
        enabled: false,
        pollIntervalMs: 250,
        batchSize: 100,
        batchWindowMs: 20,
        maxAttempts: 3,
        retryBaseMs: 50,
        leaseTtlMs: 2000,
        wakeSignalMs: 25,
        idleSegmentDelayMs: 20,
        segments: { default: 8, byName: { TRANSFER_PROCESS: 1 } },
        reactionConcurrency: 6,
      },
      transfers: { maxBacklog: 500, backlogRefreshMs: 250 },
    });
  });

  it('uses a development secret outside production only, and says so', () => {
    expect(loadConfig({}).auth.key).toEqual({ kind: 'secret', secret: DEVELOPMENT_JWT_SECRET, isDevelopmentDefault: true });
    expect(loadConfig({ JWT_JWKS_URL: 'https://id.example/jwks' }).auth).toMatchObject({
      key: { kind: 'jwks' },
      algorithms: ['RS256', 'ES256'],
    });
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'y'.repeat(40), DATABASE_URL: 'postgres://u:p@db/ledger' }).production).toBe(
      true,
    );
  });

  it('logs JSON lines by default in production only, and either format on request', () => {
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'y'.repeat(40) }).logFormat).toBe('json');
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'y'.repeat(40), LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
    expect(loadConfig({ LOG_FORMAT: 'json' }).logFormat).toBe('json');
  });

  it.each([
    [{ PORT: 'eighty' }, /PORT must be an integer/],
    [{ PORT: '70000' }, /PORT must be an integer from 0 to 65535/],
    [{ DATABASE_POOL_SIZE: '0' }, /DATABASE_POOL_SIZE/],
    [{ DATABASE_URL: 'not a url' }, /DATABASE_URL is not a URL/],
    [{ QUERY_DATABASE_URL: 'mysql://reader@replica/ledger' }, /QUERY_DATABASE_URL must start with postgres/],
    [{ DATABASE_URL: 'mysql://localhost/x' }, /must start with postgres:\/\//],
    [{ COMMAND_MAX_ATTEMPTS: '1.5' }, /COMMAND_MAX_ATTEMPTS/],
    [{ APPEND_GROUP_STATEMENTS: '0' }, /APPEND_GROUP_STATEMENTS must be an integer from 1/],
    [{ APPEND_GROUP_STATEMENTS: '65' }, /APPEND_GROUP_STATEMENTS/],
    // DATABASE_SCHEMA goes into every connection's startup options: nothing but an identifier.
    [{ DATABASE_SCHEMA: 'public -c role=postgres' }, /DATABASE_SCHEMA must be a lowercase identifier/],
    [{ DATABASE_SCHEMA: 'public,evil' }, /DATABASE_SCHEMA/],
    [{ DATABASE_SCHEMA: '"public"' }, /DATABASE_SCHEMA/],
    [{ DATABASE_SCHEMA: 'Ledger' }, /DATABASE_SCHEMA/],
    [{ DATABASE_SCHEMA: 'pg_catalog' }, /DATABASE_SCHEMA/],
    [{ DATABASE_SCHEMA: '1ledger' }, /DATABASE_SCHEMA/],
    [{ DATABASE_SCHEMA: 'l'.repeat(56) }, /DATABASE_SCHEMA/],
    [{ DATABASE_SCHEMA: 'public\\ -c search_path=evil' }, /DATABASE_SCHEMA/],
    // A URL's own startup options would replace the pinned search_path.
    [{ DATABASE_URL: 'postgres://u:p@db/ledger?options=-c%20search_path%3Devil' }, /DATABASE_URL may not set options/],
    [{ COMMAND_DATABASE_URL: 'postgres://u:p@db/ledger?sslmode=require&options=x' }, /COMMAND_DATABASE_URL may not set options/],
    [{ PROJECTIONS_ENABLED: 'yes' }, /PROJECTIONS_ENABLED must be true or false/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL must be one of/],
    [{ LOG_FORMAT: 'yaml' }, /LOG_FORMAT must be json or pretty/],
    [{ SNAPSHOT_INTERVALS: 'account=100' }, /SNAPSHOT_INTERVALS must look like/],
    [{ NODE_ENV: 'production' }, /in production \(NODE_ENV=production\) JWT_SECRET/],
    [{ NODE_ENV: 'production', JWT_SECRET: 'ledger-development-only-secret-never-use-in-production' }, /not to the development default/],
    [{ MIGRATIONS_RUN: 'no' }, /MIGRATIONS_RUN must be true or false/],
    [{ DATABASE_STATEMENT_TIMEOUT_MS: '-1' }, /DATABASE_STATEMENT_TIMEOUT_MS must be an integer from 0/],
    [{ DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '1e3x' }, /DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS/],
    [{ METRICS_PORT: '70000' }, /METRICS_PORT/],
    [{ SHUTDOWN_DELAY_MS: 'soon' }, /SHUTDOWN_DELAY_MS/],
    [{ SHUTDOWN_TIMEOUT_MS: '0' }, /SHUTDOWN_TIMEOUT_MS must be an integer from 100/],
    [{ JWT_SECRET: 'short' }, /at least 32 characters/],
    [{ JWT_SECRET: 'x'.repeat(32), JWT_JWKS_URL: 'https://id.example/jwks' }, /only one of/],
    [{ JWT_PUBLIC_KEY: 'not a pem' }, /PEM public key/],
    [{ PROJECTION_LEASE_TTL_MS: '10' }, /PROJECTION_LEASE_TTL_MS/],
    [{ PROJECTION_WAKE_SIGNAL_MS: '0' }, /PROJECTION_WAKE_SIGNAL_MS/],
    [{ PROJECTION_SEGMENTS: '0' }, /PROJECTION_SEGMENTS must be an integer from 1 to 256/],
    [{ PROJECTION_SEGMENTS: '257' }, /PROJECTION_SEGMENTS must be an integer from 1 to 256/],
    [{ PROJECTION_SEGMENTS_ACCOUNT_SUMMARY: 'four' }, /PROJECTION_SEGMENTS_ACCOUNT_SUMMARY must be an integer from 1 to 256/],
    [{ LIVE_FEED_MAX_CONNECTIONS_PER_CLIENT: '0' }, /LIVE_FEED_MAX_CONNECTIONS_PER_CLIENT must be an integer from 1/],
    [{ LIVE_FEED_MAX_CONNECTIONS_PER_CLIENT: 'ten' }, /LIVE_FEED_MAX_CONNECTIONS_PER_CLIENT must be an integer/],
    [{ LIVE_FEED_MAX_CONNECTIONS: '0' }, /LIVE_FEED_MAX_CONNECTIONS must be an integer from 1/],
    [{ LIVE_FEED_MAX_CONNECTIONS: '2.5' }, /LIVE_FEED_MAX_CONNECTIONS must be an integer/],
    [{ NATS_URL: 'http://broker:4222' }, /NATS_URL must be nats:\/\/host:port/],
    [{ NATS_URL: 'nats://a:4222, nats://b:4222/x' }, /NATS_URL must be/],
    [{ NATS_URL: 'nats://broker:4222', NATS_STREAM: 'ledger.events' }, /NATS_STREAM must be/],
    [{ NATS_URL: 'nats://broker:4222', NATS_PUBLISH_CONCURRENCY: '0' }, /NATS_PUBLISH_CONCURRENCY must be an integer from 1 to 256/],
    [{ PROJECTION_BATCH_WINDOW_MS: '5000' }, /PROJECTION_BATCH_WINDOW_MS/],
    [{ PROJECTION_BATCH_WINDOW_MS: '400', PROJECTION_LEASE_TTL_MS: '1000' }, /below a third of PROJECTION_LEASE_TTL_MS/],
    [{ TRANSFER_MAX_BACKLOG: '-1' }, /TRANSFER_MAX_BACKLOG must be an integer from 0/],
    [{ TRANSFER_MAX_BACKLOG: 'many' }, /TRANSFER_MAX_BACKLOG must be an integer/],
    [{ TRANSFER_BACKLOG_REFRESH_MS: '5' }, /TRANSFER_BACKLOG_REFRESH_MS must be an integer from 10/],
  ])('refuses %p with a clear message', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
