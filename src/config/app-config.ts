import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { DEFAULT_SCHEMA, SCHEMA_NAME, urlSetsOptions } from '../database/schema-name.js';

/**
 * Everything the service reads from its environment, parsed and checked once at start-up.
 * A plain object rather than a ConfigService because the database must be chosen (and an embedded
 * one started) before the Nest application exists. Every variable is listed in .env.example.
 */
export type LogLevelName = 'error' | 'warn' | 'log' | 'debug' | 'verbose';
const LOG_LEVELS: readonly LogLevelName[] = ['error', 'warn', 'log', 'debug', 'verbose'];

export type LogFormat = 'json' | 'pretty';

/** How bearer tokens are verified: exactly one key source. */
export type JwtKey =
  | { readonly kind: 'secret'; readonly secret: string; readonly isDevelopmentDefault: boolean }
  | { readonly kind: 'public-key'; readonly publicKey: string }
  | { readonly kind: 'jwks'; readonly jwksUrl: string };

/** The secret used when none is configured outside production: printed tokens work out of the box. */
export const DEVELOPMENT_JWT_SECRET = 'ledger-development-only-secret-never-use-in-production';

export interface AppConfig {
  readonly port: number;
  /** NODE_ENV=production: no development defaults (a missing or default JWT secret stops the start). */
  readonly production: boolean;
  readonly auth: {
    readonly key: JwtKey;
    /** Accepted signature algorithms, derived from the key kind. */
    readonly algorithms: ReadonlyArray<'HS256' | 'RS256' | 'ES256'>;
    readonly issuer?: string;
    readonly audience?: string;
  };
  readonly rateLimit: {
    readonly enabled: boolean;
    /** Per client (token subject, else IP address) and per minute. */
    readonly commandsPerMinute: number;
    readonly queriesPerMinute: number;
  };
  /** Origins allowed to call the API from a browser; empty: no CORS headers at all. */
  readonly corsOrigins: readonly string[];
  /** Most detailed level logged: `debug` adds a line per command (with its correlation id). */
  readonly logLevel: LogLevelName;
  /**
   * LOG_FORMAT: `json` (one JSON object per line, for a log shipper; the production default) or
   * `pretty` (one readable text line per entry; the development default).
   */
  readonly logFormat: LogFormat;
  /** An external PostgreSQL; when absent, an embedded server is started under `embeddedDatabase.dir`. */
  readonly databaseUrl?: string;
  /**
   * Each side's own connection, e.g. as a least-privilege role or, for queries, a read replica;
   * absent: the main database. Migrations always run on the main one (its owner).
   */
  readonly sideDatabaseUrls: { readonly command?: string; readonly query?: string; readonly projector?: string };
  /**
   * The schema that holds the ledger's tables: every connection's search_path is pinned to it (a
   * rebuild's copies go to `<schema>_rebuild`). Created by the migrating owner if missing.
   */
  readonly databaseSchema: string;
  /** Connections per pool (every side that has its own URL has its own pool). */
  readonly databasePoolSize: number;
  /** Whether the service applies pending migrations at start (false: a separate job runs them). */
  readonly migrationsRun: boolean;
  /**
   * Per connection of the service's pools (and its LISTEN connection): a statement running longer
   * is cancelled, a transaction left idle longer is ended by the server. 0: off. The migrating
   * owner's connections run without either (see dataSourceOptions).
   */
  readonly databaseTimeouts: { readonly statementMs: number; readonly idleInTransactionMs: number };
  /** Prometheus metrics on a listener of their own (not on PORT) when set. */
  readonly metricsPort?: number;
  readonly shutdown: {
    /** After SIGTERM, readiness answers 503 this long before HTTP starts draining. */
    readonly delayMs: number;
    /** A shutdown still running this long after SIGTERM ends the process with exit code 1. */
    readonly timeoutMs: number;
  };
  readonly embeddedDatabase: { readonly dir: string; readonly port: number };
  /** Largest accepted request body, in bytes (larger → 413). */
  readonly bodyLimitBytes: number;
  /** Attempts per command when concurrent writers keep winning (then 409). */
  readonly commandMaxAttempts: number;
  /**
   * Group-commit statements of appends in flight at once per process (capped by the pool size): an
   * append arriving while they all run waits for one to return and goes with the others queued then.
   */
  readonly appendGroupStatements: number;
  /** Streams whose last appended state a command may decide on without reading them (0: off). */
  readonly aggregateCacheSize: number;
  /** COMMAND_LANE_MAX_WAIT_MS: a command's longest wait for its turn on a stream, then 503 STREAM_BUSY. */
  readonly commandLaneMaxWaitMs: number;
  /** Longest a query with minPosition waits for its projection (then 503). */
  readonly readYourWritesTimeoutMs: number;
  /** How long an Idempotency-Key is remembered (its response replayed) after its request. */
  readonly idempotencyKeyTtlHours: number;
  /** Per aggregate type, a snapshot every N events (0: never), e.g. { account: 100 }. */
  readonly snapshotIntervals: Readonly<Record<string, number>>;
  readonly liveFeed: {
    /** A comment line sent this often keeps idle connections (and proxies) open. */
    readonly heartbeatMs: number;
    /** A client whose socket does not drain for this long is disconnected (it resumes with Last-Event-ID). */
    readonly stallTimeoutMs: number;
    /** Open streams one client (token subject) may hold in this process; one more is a 429. */
    readonly maxConnectionsPerClient: number;
    /** Open streams of all clients in this process; one more is a 503. */
    readonly maxConnections: number;
  };
  readonly transfers: {
    /** Pending transfers past which POST /transfers answers 503 TRANSFER_BACKLOG_FULL (0: no bound). */
    readonly maxBacklog: number;
    /** The pending count behind that bound is read at most this often per instance. */
    readonly backlogRefreshMs: number;
  };
  /**
   * NATS_URL set: every committed event is relayed to this JetStream stream (created if missing).
   * Absent: no relay, no broker needed.
   */
  readonly nats?: {
    readonly url: string;
    readonly stream: string;
    /** NATS_PUBLISH_CONCURRENCY: how many streams the relay publishes at once (each stream's events in order). */
    readonly publishConcurrency: number;
  };
  readonly projections: {
    /** Off: this process serves HTTP but runs no projection (another instance must). */
    readonly enabled: boolean;
    readonly pollIntervalMs: number;
    readonly batchSize: number;
    /** A runner reads its next batch no sooner than this after its last one (0: at once). */
    readonly batchWindowMs: number;
    readonly maxAttempts: number;
    readonly retryBaseMs: number;
    readonly leaseTtlMs: number;
    /** At most one wake-up NOTIFY to the other instances per this many ms, after appends commit. */
    readonly wakeSignalMs: number;
    /** A segment with nothing of its own in an append moves its checkpoint past it this much later (0: at once). */
    readonly idleSegmentDelayMs: number;
    /**
     * Segments of every async projection and process manager (PROJECTION_SEGMENTS), and overrides by
     * projection (PROJECTION_SEGMENTS_<NAME>: the name upper-cased, non-alphanumerics as `_`).
     */
    readonly segments: { readonly default: number; readonly byName: Readonly<Record<string, number>> };
    /** Keys (transfers) a process manager's segment reacts to at once, each key in order (PROJECTION_REACTION_CONCURRENCY). */
    readonly reactionConcurrency: number;
  };
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(`Invalid configuration: ${message}`);
    this.name = 'ConfigError';
  }
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function boolean(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

/** SNAPSHOT_INTERVALS="account:100,transfer:0" (default: account every 100 events). */
function snapshotIntervals(env: NodeJS.ProcessEnv): Record<string, number> {
  const raw = env.SNAPSHOT_INTERVALS;
  if (raw === undefined) return { account: 100 };
  const intervals: Record<string, number> = {};
  for (const entry of raw
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)) {
    const match = /^([a-z][a-z0-9-]*):(\d{1,9})$/.exec(entry);
    if (!match) throw new ConfigError(`SNAPSHOT_INTERVALS must look like "account:100,transfer:0", got "${raw}"`);
    intervals[match[1]] = Number(match[2]);
  }
  return intervals;
}

function logLevel(env: NodeJS.ProcessEnv): LogLevelName {
  const raw = env.LOG_LEVEL;
  if (raw === undefined || raw === '') return 'log';
  if (!(LOG_LEVELS as readonly string[]).includes(raw))
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${raw}"`);
  return raw as LogLevelName;
}

function logFormat(env: NodeJS.ProcessEnv, production: boolean): LogFormat {
  const raw = env.LOG_FORMAT;
  if (raw === undefined || raw === '') return production ? 'json' : 'pretty';
  if (raw !== 'json' && raw !== 'pretty') throw new ConfigError(`LOG_FORMAT must be json or pretty, got "${raw}"`);
  return raw;
}

/** The levels Nest should print for a most-detailed level (fatal always). */
export function logLevelsUpTo(level: LogLevelName): Array<LogLevelName | 'fatal'> {
  return ['fatal', ...LOG_LEVELS.slice(0, LOG_LEVELS.indexOf(level) + 1)];
}

function databaseUrl(env: NodeJS.ProcessEnv, name = 'DATABASE_URL'): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name} is not a URL (expected postgres://user:password@host:port/database)`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError(`${name} must start with postgres:// or postgresql://, got "${url.protocol}//"`);
  }
  if (urlSetsOptions(raw)) {
    throw new ConfigError(`${name} may not set options: the service pins each connection's search_path itself (DATABASE_SCHEMA)`);
  }
  return raw;
}

function databaseSchema(env: NodeJS.ProcessEnv): string {
  const raw = env.DATABASE_SCHEMA;
  if (raw === undefined || raw === '') return DEFAULT_SCHEMA;
  if (!SCHEMA_NAME.test(raw)) {
    throw new ConfigError(
      `DATABASE_SCHEMA must be a lowercase identifier (a-z, 0-9, _; at most 55 characters; not starting with a digit or pg_), got "${raw}"`,
    );
  }
  return raw;
}

function jwtKey(env: NodeJS.ProcessEnv, production: boolean): JwtKey {
  const given = (['JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWT_JWKS_URL'] as const).filter((name) => env[name]);
  if (given.length > 1) throw new ConfigError(`set only one of JWT_SECRET, JWT_PUBLIC_KEY and JWT_JWKS_URL (got ${given.join(', ')})`);
  if (env.JWT_PUBLIC_KEY) {
    const publicKey = env.JWT_PUBLIC_KEY.replaceAll('\\n', '\n');
    if (!publicKey.includes('BEGIN PUBLIC KEY'))
      throw new ConfigError('JWT_PUBLIC_KEY must be a PEM public key (-----BEGIN PUBLIC KEY-----)');
    return { kind: 'public-key', publicKey };
  }
  if (env.JWT_JWKS_URL) {
    let url: URL;
    try {
      url = new URL(env.JWT_JWKS_URL);
    } catch {
      throw new ConfigError('JWT_JWKS_URL is not a URL');
    }
    if (production && url.protocol !== 'https:') throw new ConfigError('JWT_JWKS_URL must be https in production');
    return { kind: 'jwks', jwksUrl: url.toString() };
  }
  const secret = env.JWT_SECRET ?? '';
  if (production && (secret === '' || secret === DEVELOPMENT_JWT_SECRET)) {
    throw new ConfigError(
      'in production (NODE_ENV=production) JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL must be set, and not to the development default',
    );
  }
  if (secret !== '' && secret.length < 32) throw new ConfigError('JWT_SECRET must be at least 32 characters');
  return secret === ''
    ? { kind: 'secret', secret: DEVELOPMENT_JWT_SECRET, isDevelopmentDefault: true }
    : { kind: 'secret', secret, isDevelopmentDefault: secret === DEVELOPMENT_JWT_SECRET };
}

function text(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const production = env.NODE_ENV === 'production';
  const key = jwtKey(env, production);
  // Production without DATABASE_URL is refused where a database is opened (openDatabase), not here:
  // `ledger token` needs no database.
  const mainDatabaseUrl = databaseUrl(env);
  const metricsPort = integer(env, 'METRICS_PORT', 0, 0, 65535);
  return {
    port: integer(env, 'PORT', 3000, 0, 65535),
    production,
    auth: {
      key,
      algorithms: key.kind === 'secret' ? ['HS256'] : ['RS256', 'ES256'],
      issuer: text(env, 'JWT_ISSUER'),
      audience: text(env, 'JWT_AUDIENCE'),
    },
    rateLimit: {
      enabled: boolean(env, 'RATE_LIMIT_ENABLED', true),
      commandsPerMinute: integer(env, 'RATE_LIMIT_COMMANDS_PER_MINUTE', 1200, 1, 10_000_000),
      queriesPerMinute: integer(env, 'RATE_LIMIT_QUERIES_PER_MINUTE', 6000, 1, 10_000_000),
    },
    corsOrigins: (env.CORS_ORIGINS ?? '')
      .split(',')
      .map((origin) => origin.trim())
      .filter(Boolean),
    logLevel: logLevel(env),
    logFormat: logFormat(env, production),
    databaseUrl: mainDatabaseUrl,
    sideDatabaseUrls: {
      command: databaseUrl(env, 'COMMAND_DATABASE_URL'),
      query: databaseUrl(env, 'QUERY_DATABASE_URL'),
      projector: databaseUrl(env, 'PROJECTOR_DATABASE_URL'),
    },
    databaseSchema: databaseSchema(env),
    databasePoolSize: integer(env, 'DATABASE_POOL_SIZE', 10, 1, 1000),
    migrationsRun: boolean(env, 'MIGRATIONS_RUN', true),
    databaseTimeouts: {
      statementMs: integer(env, 'DATABASE_STATEMENT_TIMEOUT_MS', 30_000, 0, 3_600_000),
      idleInTransactionMs: integer(env, 'DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS', 10_000, 0, 3_600_000),
    },
    ...(metricsPort === 0 ? {} : { metricsPort }),
    shutdown: {
      delayMs: integer(env, 'SHUTDOWN_DELAY_MS', 0, 0, 600_000),
      timeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', 25_000, 100, 3_600_000),
    },
    embeddedDatabase: {
      dir: resolve(env.EMBEDDED_DATABASE_DIR || '.data/postgres'),
      port: integer(env, 'EMBEDDED_DATABASE_PORT', 54329, 1, 65535),
    },
    bodyLimitBytes: integer(env, 'BODY_LIMIT_BYTES', 100 * 1024, 1, 50 * 1024 * 1024),
    commandMaxAttempts: integer(env, 'COMMAND_MAX_ATTEMPTS', 10, 1, 100),
    appendGroupStatements: integer(env, 'APPEND_GROUP_STATEMENTS', 1, 1, 64),
    aggregateCacheSize: integer(env, 'AGGREGATE_CACHE_SIZE', 10_000, 0, 10_000_000),
    commandLaneMaxWaitMs: integer(env, 'COMMAND_LANE_MAX_WAIT_MS', 5_000, 1, 600_000),
    readYourWritesTimeoutMs: integer(env, 'READ_YOUR_WRITES_TIMEOUT_MS', 2000, 0, 60_000),
    idempotencyKeyTtlHours: integer(env, 'IDEMPOTENCY_KEY_TTL_HOURS', 24, 1, 24 * 365),
    snapshotIntervals: snapshotIntervals(env),
    liveFeed: {
      heartbeatMs: integer(env, 'LIVE_FEED_HEARTBEAT_MS', 15_000, 100, 600_000),
      stallTimeoutMs: integer(env, 'LIVE_FEED_STALL_TIMEOUT_MS', 10_000, 100, 600_000),
      maxConnectionsPerClient: integer(env, 'LIVE_FEED_MAX_CONNECTIONS_PER_CLIENT', 10, 1, 100_000),
      maxConnections: integer(env, 'LIVE_FEED_MAX_CONNECTIONS', 1000, 1, 1_000_000),
    },
    transfers: {
      maxBacklog: integer(env, 'TRANSFER_MAX_BACKLOG', 10_000, 0, 100_000_000),
      backlogRefreshMs: integer(env, 'TRANSFER_BACKLOG_REFRESH_MS', 1000, 10, 60_000),
    },
    nats: nats(env),
    projections: projections(env),
  };
}

/** NATS_URL: one or more comma-separated nats:// or tls:// URLs (a cluster's seeds). */
function nats(env: NodeJS.ProcessEnv): AppConfig['nats'] {
  const url = env.NATS_URL?.trim();
  if (!url) return undefined;
  for (const server of url.split(',')) {
    if (!/^(nats|tls):\/\/[^\s/]+$/.test(server.trim())) {
      throw new ConfigError(`NATS_URL must be nats://host:port or tls://host:port (comma-separated for several), got "${server}"`);
    }
  }
  const stream = env.NATS_STREAM || 'LEDGER';
  // JetStream stream names: no whitespace, dots, wildcards or path separators.
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(stream)) throw new ConfigError(`NATS_STREAM must be 1 to 64 of A-Z a-z 0-9 _ -, got "${stream}"`);
  return { url, stream, publishConcurrency: integer(env, 'NATS_PUBLISH_CONCURRENCY', 32, 1, 256) };
}

function projections(env: NodeJS.ProcessEnv): AppConfig['projections'] {
  const leaseTtlMs = integer(env, 'PROJECTION_LEASE_TTL_MS', 10_000, 100, 600_000);
  const batchWindowMs = integer(env, 'PROJECTION_BATCH_WINDOW_MS', 0, 0, 1000);
  // A runner renews its lease every third of it; a window as long would let the lease lapse.
  if (batchWindowMs >= leaseTtlMs / 3) {
    throw new ConfigError(`PROJECTION_BATCH_WINDOW_MS (${batchWindowMs}) must be below a third of PROJECTION_LEASE_TTL_MS (${leaseTtlMs})`);
  }
  return {
    enabled: boolean(env, 'PROJECTIONS_ENABLED', true),
    pollIntervalMs: integer(env, 'PROJECTION_POLL_INTERVAL_MS', 1000, 10, 60_000),
    batchSize: integer(env, 'PROJECTION_BATCH_SIZE', 500, 1, 10_000),
    batchWindowMs,
    maxAttempts: integer(env, 'PROJECTION_MAX_ATTEMPTS', 5, 1, 100),
    retryBaseMs: integer(env, 'PROJECTION_RETRY_BASE_MS', 200, 1, 60_000),
    leaseTtlMs,
    wakeSignalMs: integer(env, 'PROJECTION_WAKE_SIGNAL_MS', 10, 1, 1000),
    idleSegmentDelayMs: integer(env, 'PROJECTION_IDLE_SEGMENT_DELAY_MS', 50, 0, 10_000),
    segments: segments(env),
    reactionConcurrency: integer(env, 'PROJECTION_REACTION_CONCURRENCY', 4, 1, 64),
  };
}

/**
 * PROJECTION_SEGMENTS (1–256; default two per core, at most 16: a segment mostly waits on PostgreSQL
 * round trips, so a few per core keep the cores busy) and PROJECTION_SEGMENTS_<NAME> overrides.
 */
function segments(env: NodeJS.ProcessEnv): AppConfig['projections']['segments'] {
  const byName: Record<string, number> = {};
  for (const name of Object.keys(env)) {
    const match = /^PROJECTION_SEGMENTS_([A-Z0-9_]+)$/.exec(name);
    if (match) byName[match[1]] = integer(env, name, 1, 1, 256);
  }
  const fallback = Math.min(16, Math.max(1, availableParallelism() * 2));
  return { default: integer(env, 'PROJECTION_SEGMENTS', fallback, 1, 256), byName };
}

/** Loads `.env` from the working directory when there is one; real environment variables win. */
export function loadDotEnv(path = '.env'): void {
  if (existsSync(path)) process.loadEnvFile(path);
}
