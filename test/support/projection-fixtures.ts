import { setTimeout as sleep } from 'node:timers/promises';
import { Injectable, type Type } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { Test, type TestingModule } from '@nestjs/testing';
import pg from 'pg';
import { DataSource, type EntityManager } from 'typeorm';
import { loadConfig } from '../../src/config/app-config.js';
import { DatabaseModule } from '../../src/database/database.module.js';
import {
  type Checkpoint,
  type EventClass,
  EventSourcingModule,
  EventStore,
  EventType,
  type ProcessManager,
  type Projection,
  ProjectionAdmin,
  ProjectionCheckpoints,
  ProjectionEngine,
  type ProjectionEngineOptions,
  ProjectionHandlers,
  type ProjectionMode,
  type ProjectionStatusReport,
  type RecordedEvent,
  compareCheckpoints,
} from '../../src/event-sourcing/index.js';

// ---------------------------------------------------------------------------------------------
// A test event of the engine suites (the accounts feature's events are used as well).

@EventType('engine-test.Ticked')
export class Ticked {
  readonly n!: number;
  constructor(data: Ticked) {
    Object.assign(this, data);
  }
}

// ---------------------------------------------------------------------------------------------
// Counting projections: deliberately NOT idempotent, so that an event applied twice (or skipped)
// shows in the numbers. Each one owns two tables named after it:
//   <prefix>_count (id = 1, n)               n = n + 1 per event
//   <prefix>_log   (position, stream_id, …)  one row per application, no unique constraint

/** What a counting projection's handler does besides counting; set by the test, read per event. */
export interface CountingBehaviour {
  /** pg_sleep per event, in milliseconds (slows a batch down). */
  sleepMs: number;
  /** Throws for these positions: a number of times, or forever. */
  failures: Map<number, number | 'always'>;
  /** Handler calls per position (calls, not commits: a rolled-back batch still counts). */
  calls: Map<number, number>;
  /** Called after each successful handler call, with the total of successful calls so far. */
  onApplied?: (event: RecordedEvent, callsSoFar: number) => void | Promise<void>;
  succeeded: number;
}

export interface CountingProjectionClass extends Type<Projection> {
  readonly projectionName: string;
  readonly prefix: string;
  readonly behaviour: CountingBehaviour;
}

export function newBehaviour(): CountingBehaviour {
  return { sleepMs: 0, failures: new Map(), calls: new Map(), succeeded: 0 };
}

export function countingTables(prefix: string): { count: string; log: string } {
  return { count: `${prefix}_count`, log: `${prefix}_log` };
}

/**
 * Defines an @Injectable projection class named `name`, in `mode`, counting every event of the
 * given classes. The behaviour object is static (shared by every instance in this process).
 */
export function defineCountingProjection(
  name: string,
  mode: ProjectionMode,
  events: ReadonlyArray<EventClass<any>>,
): CountingProjectionClass {
  const prefix = name.replace(/[^a-z0-9]/gi, '_').toLowerCase();
  const tables = countingTables(prefix);
  const behaviour = newBehaviour();
  const handle = async (event: RecordedEvent, manager: EntityManager) => {
    behaviour.calls.set(event.position, (behaviour.calls.get(event.position) ?? 0) + 1);
    if (behaviour.sleepMs > 0) await manager.query('SELECT pg_sleep($1)', [behaviour.sleepMs / 1000]);
    const failure = behaviour.failures.get(event.position);
    if (failure === 'always' || (typeof failure === 'number' && failure > 0)) {
      if (typeof failure === 'number') behaviour.failures.set(event.position, failure - 1);
      throw new Error(`${name} refuses the event at position ${event.position}`);
    }
    // Unqualified names: during a rebuild they resolve to the shadow copies.
    await manager.query(`INSERT INTO ${tables.count} (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = ${tables.count}.n + 1`);
    await manager.query(`INSERT INTO ${tables.log} (position, stream_id) VALUES ($1, $2)`, [event.position, event.streamId]);
    behaviour.succeeded++;
    await behaviour.onApplied?.(event, behaviour.succeeded);
  };

  @Injectable()
  class CountingProjection implements Projection {
    static readonly projectionName = name;
    static readonly prefix = prefix;
    static readonly behaviour = behaviour;
    readonly name = name;
    readonly mode = mode;
    readonly tables = [tables.count, tables.log];
    readonly handlers = events.reduce((handlers, eventClass) => handlers.on(eventClass, handle), new ProjectionHandlers());
  }
  Object.defineProperty(CountingProjection, 'name', { value: `CountingProjection_${prefix}` });
  return CountingProjection;
}

/** Creates the tables of a counting projection (before the engine that runs it starts). */
export async function createCountingTables(url: string, prefix: string): Promise<void> {
  const tables = countingTables(prefix);
  await withClient(url, async (client) => {
    await client.query(`CREATE TABLE ${tables.count} (id integer PRIMARY KEY, n bigint NOT NULL)`);
    await client.query(`CREATE TABLE ${tables.log} (position bigint NOT NULL, stream_id text NOT NULL)`);
  });
}

export interface CountingState {
  /** The counter (0 when its row does not exist yet). */
  readonly n: number;
  /** Every logged application, in position order (duplicates included). */
  readonly positions: number[];
  /** Positions logged more than once. */
  readonly duplicates: number[];
}

export async function countingState(query: Queryable, prefix: string): Promise<CountingState> {
  const tables = countingTables(prefix);
  const count = await rows<{ n: string }>(query, `SELECT n FROM ${tables.count} WHERE id = 1`);
  const log = await rows<{ position: string }>(query, `SELECT position FROM ${tables.log} ORDER BY position`);
  const positions = log.map((row) => Number(row.position));
  const duplicates = [...new Set(positions.filter((position, index) => index > 0 && positions[index - 1] === position))];
  return { n: count.length ? Number(count[0].n) : 0, positions, duplicates };
}

// ---------------------------------------------------------------------------------------------
// The event-sourcing core on an EXISTING database (the database may be shared with an app).

export interface EngineModule {
  readonly moduleRef: TestingModule;
  readonly store: EventStore;
  readonly dataSource: DataSource;
  readonly engine: ProjectionEngine;
  readonly admin: ProjectionAdmin;
  readonly checkpoints: ProjectionCheckpoints;
  close(): Promise<void>;
}

export interface EngineModuleOptions {
  readonly url: string;
  readonly events: ReadonlyArray<EventClass<any>>;
  readonly projections: ReadonlyArray<Type<Projection>>;
  readonly processManagers?: ReadonlyArray<Type<ProcessManager>>;
  readonly engine?: Partial<ProjectionEngineOptions>;
  readonly poolSize?: number;
  /** Let the engine's logger print (a child process sends it to stderr). */
  readonly log?: boolean;
}

export async function startEngineModule(options: EngineModuleOptions): Promise<EngineModule> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      DatabaseModule.forRoot(options.url, options.poolSize ?? 10),
      CqrsModule.forRoot(),
      EventSourcingModule.forRoot({
        commands: { maxAttempts: 10 },
        // One segment unless a test asks for more (the suites below look at the projection's single row).
        projections: { ...loadConfig({}).projections, segments: { default: 1, byName: {} }, ...options.engine },
        snapshots: { intervals: {} },
      }),
      EventSourcingModule.forFeature({
        events: options.events,
        projections: options.projections,
        processManagers: options.processManagers,
      }),
    ],
  }).compile();
  if (!options.log) moduleRef.useLogger(false);
  await moduleRef.init(); // onApplicationBootstrap: the engine starts its runners
  return {
    moduleRef,
    store: moduleRef.get(EventStore),
    dataSource: moduleRef.get(DataSource),
    engine: moduleRef.get(ProjectionEngine),
    admin: moduleRef.get(ProjectionAdmin),
    checkpoints: moduleRef.get(ProjectionCheckpoints),
    close: () => moduleRef.close(),
  };
}

// ---------------------------------------------------------------------------------------------
// Small database helpers that do not depend on the application.

export type Queryable = DataSource | EntityManager | pg.Client | pg.Pool;

export async function rows<Row>(query: Queryable, text: string, parameters: unknown[] = []): Promise<Row[]> {
  if (query instanceof pg.Client || query instanceof pg.Pool) return (await query.query(text, parameters)).rows as Row[];
  return (await query.query(text, parameters)) as Row[];
}

export async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** The last committed event in commit order (transaction id, position): where a caught-up projection stands. */
export async function headOfLog(query: Queryable): Promise<Checkpoint> {
  // Ordered by the xid8 column itself (an output alias named like it would sort the text).
  const [head] = await rows<{ xid: string; position: string }>(
    query,
    'SELECT e.transaction_id::text AS xid, e.position FROM events e ORDER BY e.transaction_id DESC, e.position DESC LIMIT 1',
  );
  return head ? { transactionId: head.xid, position: Number(head.position) } : { transactionId: '0', position: 0 };
}

export interface CheckpointRow {
  readonly name: string;
  readonly checkpoint: Checkpoint;
  readonly status: string;
  readonly attempts: number;
  readonly lastError: string | null;
  readonly failedPosition: number | null;
  readonly leaseOwner: string | null;
  readonly leaseExpiresAt: Date | null;
  readonly rebuildStatus: string | null;
}

export async function checkpointRow(query: Queryable, name: string): Promise<CheckpointRow | undefined> {
  const [row] = await rows<Record<string, any>>(
    query,
    `SELECT name, transaction_id::text, position, status, attempts, last_error, failed_position, lease_owner, lease_expires_at, rebuild_status
     FROM projection_checkpoints WHERE projection = $1
     -- Segmented: a failed segment first, else the one furthest behind (what the projection reflects).
     ORDER BY (status = 'failed') DESC, transaction_id, position LIMIT 1`,
    [name],
  );
  if (!row) return undefined;
  return {
    name: row.name,
    checkpoint: { transactionId: row.transaction_id, position: Number(row.position) },
    status: row.status,
    attempts: row.attempts,
    lastError: row.last_error,
    failedPosition: row.failed_position === null ? null : Number(row.failed_position),
    leaseOwner: row.lease_owner,
    leaseExpiresAt: row.lease_expires_at,
    rebuildStatus: row.rebuild_status,
  };
}

/**
 * Polls `probe` until it returns something other than undefined; fails with `what` after timeoutMs
 * (with what `diagnose` says, if given).
 */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 20_000,
  everyMs = 25,
  diagnose?: () => Promise<string>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const details = diagnose ? await diagnose().catch((error: unknown) => `(diagnosis failed: ${String(error)})`) : '';
      throw new Error(
        `Timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)})` : ''}${details ? `\n${details}` : ''}`,
      );
    }
    await sleep(everyMs);
  }
}

/** Waits until no rebuild of `name` is pending or running, and answers its status then. */
export function rebuildEnded(admin: ProjectionAdmin, name: string, timeoutMs = 20_000): Promise<ProjectionStatusReport> {
  return eventually(
    `the rebuild of ${name} to end`,
    async () => {
      const report = await admin.statusOf(name);
      return report.rebuild === null ? report : undefined;
    },
    timeoutMs,
  );
}

/**
 * Waits until no transaction in flight anywhere in the cluster holds back the newest committed event.
 * The horizon (pg_snapshot_xmin) is cluster-wide, so another test file's transaction in another
 * database of the same server holds it too: a case that needs every event readable at once (one
 * batch, nothing held back) waits for it first.
 */
export async function untilNothingHeldBack(query: Queryable, timeoutMs = 30_000): Promise<void> {
  await eventually(
    'no transaction in flight in the cluster to hold the newest event back',
    async () => {
      const [row] = await rows<{ clear: boolean }>(
        query,
        'SELECT coalesce((SELECT max(transaction_id) FROM events) < pg_snapshot_xmin(pg_current_snapshot()), true) AS clear',
      );
      return row.clear ? true : undefined;
    },
    timeoutMs,
  );
}

/**
 * Why a projection may not move: its checkpoint row, and the transactions holding every commit-safe
 * reader of the server back (pg_snapshot_xmin is cluster-wide: any database's open transaction counts).
 */
export async function diagnoseProjections(query: Queryable, names: readonly string[]): Promise<string> {
  const head = await headOfLog(query);
  const lines = [`head of log: ${JSON.stringify(head)}`];
  for (const name of names) lines.push(`${name}: ${JSON.stringify(await checkpointRow(query, name))}`);
  const [snapshot] = await rows<{ xmin: string }>(query, 'SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin');
  lines.push(`snapshot xmin: ${snapshot.xmin}`);
  const open = await rows<Record<string, unknown>>(
    query,
    `SELECT pid, datname, state, backend_xid::text AS xid, round(extract(epoch FROM now() - xact_start))::int AS seconds, left(query, 120) AS query
     FROM pg_stat_activity WHERE backend_xid IS NOT NULL ORDER BY xact_start LIMIT 5`,
  );
  for (const row of open) lines.push(`open transaction: ${JSON.stringify(row)}`);
  return lines.join('\n');
}

/**
 * Waits until every named projection's checkpoint is exactly the head of the log (commit order).
 * The head is read again on every poll, so it also works while the log still grows — but callers
 * normally stop writing first.
 */
export async function waitUntilCaughtUp(query: Queryable, names: readonly string[], timeoutMs = 20_000): Promise<Checkpoint> {
  return eventually(
    `projections ${names.join(', ')} to reach the head of the log`,
    async () => {
      const head = await headOfLog(query);
      for (const name of names) {
        const row = await checkpointRow(query, name);
        if (!row || compareCheckpoints(row.checkpoint, head) !== 0) return undefined;
      }
      return head;
    },
    timeoutMs,
    25,
    () => diagnoseProjections(query, names),
  );
}

/** Checkpoint ≥ the event at `position` (in commit order). */
export async function waitUntilApplied(query: Queryable, name: string, position: number, timeoutMs = 20_000): Promise<void> {
  const [event] = await rows<{ transaction_id: string }>(query, 'SELECT transaction_id::text FROM events WHERE position = $1', [position]);
  if (!event) throw new Error(`No committed event at position ${position}`);
  const target = { transactionId: event.transaction_id, position };
  await eventually(
    `${name} to apply the event at position ${position}`,
    async () => {
      const row = await checkpointRow(query, name);
      return row && compareCheckpoints(row.checkpoint, target) >= 0 ? true : undefined;
    },
    timeoutMs,
    25,
    () => diagnoseProjections(query, [name]),
  );
}

/** A promise with its resolve function: a gate a test opens when it chooses. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** A small deterministic PRNG (mulberry32), so "random" interleavings are the same on every run. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
