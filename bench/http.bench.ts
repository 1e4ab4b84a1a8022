// HTTP benchmark (issue 7, parts 2 and 3): deposits and account reads over HTTP with autocannon,
// against the service in a process of its own (so its RSS is its own), each next to a bare endpoint
// of the same application doing the equivalent SQL by hand (see bare-endpoints.module.ts).
//   npm run bench:http        (BENCH_HTTP_SECONDS, BENCH_HTTP_ACCOUNTS, BENCH_HTTP_CONNECTIONS …)
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon, { type Request as AutocannonRequest, type Result } from 'autocannon';
import pg from 'pg';
import { issueToken } from '../src/auth/token-issuer.js';
import { loadConfig } from '../src/config/app-config.js';
import { type BenchServer, describeMachine, freePort, isMain, openBenchServer, percentile, report, round } from './bench-database.js';
import { type BaselineBuild, prepareBaseline } from './baseline-build.js';
import { type ProfileSummary, monotonicMicros, profileTables, summariseProfileFile } from './cpuprofile-summary.js';
import { cpuSeconds, cpuTickSeconds } from './process-cpu.js';
import { ProjectionLagSampler } from './projection-lag.js';
import { productionNodeFlags } from './production-node-flags.js';

export interface HttpSettings {
  readonly accounts: number;
  readonly connections: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** Measured time cut into rounds alternating between the bare endpoint and the service. */
  readonly rounds: number;
  /** The service's DATABASE_POOL_SIZE (the bare endpoints use the same pools). */
  readonly poolSize: number;
  /** Profile the service (node --cpu-prof) under the deposit load, in a run of its own. */
  readonly profile: boolean;
  readonly profileSeconds: number;
  /**
   * CPU per request (issue 14): measured seconds per build and connection count, cut into rounds
   * alternating between the current build and the baseline commit's (when one is given).
   */
  readonly cpuSeconds: number;
  readonly cpuRounds: number;
  readonly cpuConnections: readonly number[];
  /** BENCH_HTTP_BASELINE_REF or BENCH_HTTP_BASELINE_DIR: the other build measured in the same run. */
  readonly baseline: string | null;
  /** How often the projection lag sampler reads the checkpoints, ms. */
  readonly lagPollMs: number;
  /**
   * BENCH_HTTP_PARTS=cpu: only the CPU per deposit and peak RSS of the builds (a quick same-run
   * comparison); =profile: only the profile of the service under the deposit load.
   */
  readonly parts: 'all' | 'cpu' | 'profile';
}

export function httpSettings(env: NodeJS.ProcessEnv = process.env): HttpSettings {
  return {
    accounts: Number(env.BENCH_HTTP_ACCOUNTS ?? 1000),
    connections: Number(env.BENCH_HTTP_CONNECTIONS ?? 32),
    seconds: Number(env.BENCH_HTTP_SECONDS ?? 10),
    warmupSeconds: Number(env.BENCH_HTTP_WARMUP_SECONDS ?? 3),
    rounds: Number(env.BENCH_HTTP_ROUNDS ?? 2),
    poolSize: Number(env.BENCH_HTTP_POOL_SIZE ?? 10),
    profile: env.BENCH_PROFILE !== '0',
    profileSeconds: Number(env.BENCH_PROFILE_SECONDS ?? 10),
    cpuSeconds: Number(env.BENCH_HTTP_CPU_SECONDS ?? 8),
    cpuRounds: Number(env.BENCH_HTTP_CPU_ROUNDS ?? 4),
    cpuConnections: [1, 32],
    baseline: env.BENCH_HTTP_BASELINE_DIR ?? env.BENCH_HTTP_BASELINE_REF ?? null,
    lagPollMs: Number(env.BENCH_LAG_POLL_MS ?? 5),
    parts: env.BENCH_HTTP_PARTS === 'cpu' || env.BENCH_HTTP_PARTS === 'profile' ? env.BENCH_HTTP_PARTS : 'all',
  };
}

const DIST_BENCH = import.meta.dirname;
const ROOT = join(DIST_BENCH, '..', '..');
const MB = 1024 * 1024;

/** The benchmark's client: every scope, signed with the development secret the service verifies with. */
const TOKEN = issueToken(loadConfig({}), {
  subject: 'bench',
  scopes: ['ledger:commands', 'ledger:queries', 'ledger:events', 'ledger:admin'],
  expiresIn: '1h',
});
export const AUTH = { authorization: `Bearer ${TOKEN}` };

export interface Service {
  readonly pid: number;
  readonly url: string;
  /** Largest VmRSS seen since the last reset (sampled every 100 ms), in bytes. */
  peakRss(): number;
  resetPeakRss(): void;
  /** VmHWM: the process's peak resident set over its whole life, in bytes. */
  highWaterMark(): number;
  stop(): Promise<void>;
}

function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Starts a service process: by default bench-service.js (the app plus the bare endpoints); `script`
 * runs another entry point, e.g. a build's dist/src/main.js, with the same environment. `nodeOptions`
 * are the node flags: a build's production ones (productionNodeFlags), and any the caller adds.
 */
export async function startService(
  databaseUrl: string,
  settings: HttpSettings,
  nodeOptions: string[] = [],
  script?: string,
): Promise<Service> {
  const port = await freePort();
  const cwd = mkdtempSync(join(tmpdir(), 'ledger-bench-service-'));
  const child: ChildProcess = spawn(process.execPath, [...nodeOptions, script ?? join(DIST_BENCH, 'bench-service.js')], {
    cwd,
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      LOG_LEVEL: 'warn',
      DATABASE_POOL_SIZE: String(settings.poolSize),
      // The limiter still runs on every request, but never throttles the benchmark's single client.
      RATE_LIMIT_COMMANDS_PER_MINUTE: '10000000',
      RATE_LIMIT_QUERIES_PER_MINUTE: '10000000',
      // Passed through when set, to measure what segmentation costs (the default is sized for the machine).
      ...(process.env.PROJECTION_SEGMENTS ? { PROJECTION_SEGMENTS: process.env.PROJECTION_SEGMENTS } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    process.stderr.write(`[service] ${chunk.toString()}`);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const orphanGuard = () => child.kill('SIGKILL');
  process.once('exit', orphanGuard);
  void exited.then(() => {
    process.off('exit', orphanGuard);
    rmSync(cwd, { recursive: true, force: true });
  });
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, procStatus(child.pid!, 'VmRSS'))), 100);
  void exited.then(() => clearInterval(sampler));
  const url = `http://127.0.0.1:${port}`;
  const service: Service = {
    pid: child.pid!,
    url,
    peakRss: () => Math.max(peak, procStatus(child.pid!, 'VmRSS')),
    resetPeakRss: () => (peak = procStatus(child.pid!, 'VmRSS')),
    highWaterMark: () => procStatus(child.pid!, 'VmHWM'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(killer);
    },
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the service exited at start:\n${output}`);
    // main.js says nothing at LOG_LEVEL=warn: a service is ready when its admin endpoint answers.
    if (script || output.includes('listening')) {
      const response = await fetch(`${url}/admin/projections`, { headers: AUTH }).catch(() => undefined);
      if (response?.ok) return service;
      if (response && response.status !== 404)
        throw new Error(`GET /admin/projections answered ${response.status}: ${await response.text()}`);
    }
    if (Date.now() > deadline) {
      await service.stop();
      throw new Error(`the service did not start within 60 s:\n${output}`);
    }
    await sleep(100);
  }
}

/** Opens `count` accounts directly in the store (one AccountOpened each); returns their ids. */
export async function seedAccounts(databaseUrl: string, count: number): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string }>(
      `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
       SELECT 'account-' || a.id, 1, 'accounts.AccountOpened', 1, a.event_id,
              jsonb_build_object('accountId', a.id, 'ownerName', 'Bench ' || a.n, 'currency', 'EUR'),
              jsonb_build_object('eventId', a.event_id, 'correlationId', a.event_id, 'causationId', a.event_id,
                                 'actor', 'bench', 'occurredAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
       FROM (SELECT n, gen_random_uuid() AS id, gen_random_uuid() AS event_id FROM generate_series(1, $1::int) AS n) a
       RETURNING data->>'accountId' AS id`,
      [count],
    );
    await client.query('VACUUM ANALYZE events');
    return rows.map((row) => row.id);
  } finally {
    await client.end();
  }
}

/** Until every projection has applied every committed event. */
async function waitForProjections(service: Service): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const response = await fetch(`${service.url}/admin/projections`, { headers: AUTH });
    const body = (await response.json()) as { items: Array<{ name: string; lagEvents: number; rebuild?: unknown }> };
    if (response.ok && body.items.every((item) => item.lagEvents === 0 && !item.rebuild)) return;
    if (Date.now() > deadline) throw new Error(`projections did not catch up: ${JSON.stringify(body)}`);
    await sleep(200);
  }
}

interface Load {
  readonly requestsPerSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly requests: number;
  readonly failures: number;
  readonly peakRssMB: number;
}

/** One autocannon run, with every response time (to merge rounds into exact percentiles). */
interface Run {
  readonly result: Result;
  readonly latencies: number[];
  readonly peakRss: number;
}

type Route = 'deposit' | 'bare-deposit' | 'read' | 'bare-read';

function requestFor(route: Route, ids: readonly string[]): AutocannonRequest {
  let next = Math.floor(Math.random() * ids.length);
  const deposit = route === 'deposit' || route === 'bare-deposit';
  const prefix = route.startsWith('bare') ? '/bench/accounts/' : '/accounts/';
  return {
    method: deposit ? 'POST' : 'GET',
    headers: deposit ? { ...AUTH, 'content-type': 'application/json' } : AUTH,
    ...(deposit ? { body: '{"amount":1}' } : {}),
    // Accounts in turn, from a random start: concurrent requests rarely hit the same account.
    setupRequest: (request) => ({ ...request, path: `${prefix}${ids[next++ % ids.length]}${deposit ? '/deposits' : ''}` }),
  };
}

async function run(
  service: Service,
  route: Route,
  ids: readonly string[],
  settings: HttpSettings,
  seconds: number,
  overallRate?: number,
): Promise<Run> {
  service.resetPeakRss();
  const latencies: number[] = [];
  const instance = autocannon({
    url: service.url,
    connections: settings.connections,
    duration: seconds,
    timeout: 30,
    requests: [requestFor(route, ids)],
    ...(overallRate ? { overallRate } : {}),
  });
  instance.on('response', (_client, _status, _bytes, responseTime) => latencies.push(responseTime));
  const result = await instance;
  const failures = result.non2xx + result.errors + result.timeouts;
  if (failures > 0)
    console.error(
      `${route}: ${failures} failed requests (${JSON.stringify(result.statusCodeStats)}, errors ${result.errors}, timeouts ${result.timeouts})`,
    );
  return { result, latencies, peakRss: service.peakRss() };
}

function merge(runs: readonly Run[]): Load {
  const latencies = runs.flatMap((one) => one.latencies).sort((a, b) => a - b);
  const requests = runs.reduce((sum, one) => sum + one.result.requests.total, 0);
  const seconds = runs.reduce((sum, one) => sum + one.result.duration, 0);
  return {
    requestsPerSecond: requests / seconds,
    p50: round(percentile(latencies, 50), 1),
    p99: round(percentile(latencies, 99), 1),
    requests,
    failures: runs.reduce((sum, one) => sum + one.result.non2xx + one.result.errors + one.result.timeouts, 0),
    peakRssMB: round(Math.max(...runs.map((one) => one.peakRss)) / MB, 1),
  };
}

/**
 * The bare endpoint and the service under the same load: a warm-up each, then `rounds` measured
 * rounds alternating between them (bare, service, service, bare…), each starting with the
 * projections caught up so that none inherits the catching up of another's events.
 */
async function measurePair(
  service: Service,
  bare: Route,
  real: Route,
  ids: readonly string[],
  settings: HttpSettings,
): Promise<[Load, Load]> {
  const runs: Record<'bare' | 'real', Run[]> = { bare: [], real: [] };
  const routes = { bare, real };
  for (const side of ['bare', 'real'] as const) {
    await waitForProjections(service);
    if (settings.warmupSeconds > 0) await run(service, routes[side], ids, settings, settings.warmupSeconds);
  }
  console.error(
    `http: ${bare} / ${real}, ${settings.connections} connections, ${settings.rounds} alternating rounds of ${settings.seconds / settings.rounds} s each…`,
  );
  for (let index = 0; index < settings.rounds; index++) {
    for (const side of index % 2 === 0 ? (['bare', 'real'] as const) : (['real', 'bare'] as const)) {
      await waitForProjections(service);
      runs[side].push(await run(service, routes[side], ids, settings, settings.seconds / settings.rounds));
    }
  }
  return [merge(runs.bare), merge(runs.real)];
}

/** A fixed offered rate: autocannon's histogram, corrected for coordinated omission. */
async function measureAtRate(
  service: Service,
  route: Route,
  ids: readonly string[],
  settings: HttpSettings,
  overallRate: number,
): Promise<Load> {
  await waitForProjections(service);
  console.error(`http: ${route} at ${overallRate} req/s, ${settings.connections} connections, ${settings.seconds} s…`);
  const { result, peakRss } = await run(service, route, ids, settings, settings.seconds, overallRate);
  return {
    requestsPerSecond: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
    failures: result.non2xx + result.errors + result.timeouts,
    peakRssMB: round(peakRss / MB, 1),
  };
}

/** A deposit's answer: its event's position goes to the lag sampler (a refusal has none). */
function acknowledged(body: string, lag: ProjectionLagSampler): void {
  try {
    const { position } = JSON.parse(body) as { position?: unknown };
    if (typeof position === 'number' || typeof position === 'string') lag.add(position);
  } catch {
    // not JSON: counted as a failure by its status
  }
}

/** One request through node:http on a keep-alive agent: resolves with the status code. */
function send(agent: http.Agent, base: URL, request: AutocannonRequest, path: string, onBody?: (body: string) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const body = typeof request.body === 'string' ? request.body : undefined;
    const outgoing = http.request(
      {
        agent,
        host: base.hostname,
        port: base.port,
        path,
        method: request.method,
        headers: { ...request.headers, ...(body ? { 'content-length': Buffer.byteLength(body) } : {}) },
      },
      (response) => {
        let body = '';
        if (onBody) response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        else response.resume(); // the body is not needed, only its end
        response.once('end', () => {
          if (onBody) onBody(body);
          resolve(response.statusCode ?? 0);
        });
        response.once('error', reject);
      },
    );
    outgoing.once('error', reject);
    outgoing.end(body);
  });
}

/**
 * Open-loop arrivals at `rate` per second with exponential gaps (a Poisson process, the load of many
 * independent clients): every request leaves at its own moment whatever the answers before it, and
 * its latency counts from that moment (no coordinated omission). autocannon's fixed rate instead
 * fires every connection at each tick of one timer: bursts of `connections` requests at once.
 * node:http on a keep-alive agent: about half the CPU of fetch per request, on the cores the service
 * shares with this client.
 */
async function measurePoisson(
  service: Service,
  route: Route,
  ids: readonly string[],
  seconds: number,
  rate: number,
  lag?: ProjectionLagSampler,
): Promise<Load> {
  await waitForProjections(service);
  console.error(`http: ${route} at ${rate} req/s, Poisson arrivals, ${seconds} s…`);
  service.resetPeakRss();
  const template = requestFor(route, ids);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const base = new URL(service.url);
  const latencies: number[] = [];
  let failures = 0;
  const inFlight: Array<Promise<void>> = [];
  const start = performance.now();
  let due = start;
  try {
    while (due - start < seconds * 1000) {
      due += -Math.log(1 - Math.random()) * (1000 / rate);
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const sentAt = due;
      const path = template.setupRequest!({}, {}).path!;
      inFlight.push(
        send(agent, base, template, path, lag ? (body) => acknowledged(body, lag) : undefined)
          .then((status) => {
            if (status < 200 || status >= 300) failures++;
            latencies.push(performance.now() - sentAt);
          })
          .catch(() => {
            failures++;
          }),
      );
    }
    await Promise.all(inFlight);
  } finally {
    agent.destroy();
  }
  latencies.sort((a, b) => a - b);
  return {
    requestsPerSecond: latencies.length / seconds,
    p50: round(percentile(latencies, 50), 1),
    p99: round(percentile(latencies, 99), 1),
    requests: latencies.length,
    failures,
    peakRssMB: round(service.peakRss() / MB, 1),
  };
}

function reportLoad(figure: string, key: string, measured: Load, extra: Record<string, unknown> = {}): void {
  report(figure, round(measured.requestsPerSecond), 'req/s', {
    group: 'http',
    key,
    p50Ms: measured.p50,
    p99Ms: measured.p99,
    requests: measured.requests,
    failures: measured.failures,
    peakRssMB: measured.peakRssMB,
    ...extra,
  });
}

/** Until every projection's checkpoint is at the last event (read in the database: no request to the service). */
export async function waitForCheckpoints(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const { rows } = await client.query<{ behind: number }>(
        'SELECT count(*)::int AS behind FROM projection_checkpoints WHERE position < (SELECT coalesce(max(position), 0) FROM events)',
      );
      if (rows[0].behind === 0) return;
      if (Date.now() > deadline) {
        console.error(`http: ${rows[0].behind} projections still behind after 60 s; measuring on`);
        return;
      }
      await sleep(20);
    }
  } finally {
    await client.end();
  }
}

/**
 * The current build's service flags: its production ones (package.json's start:prod), then
 * BENCH_HTTP_NODE_OPTIONS, for the current build only. A later V8 flag wins: `--max-semi-space-size=16
 * --heap-growing-percent=0` (V8's defaults) with BENCH_HTTP_BASELINE_DIR=. measures the production
 * flags' CPU and RSS against the same code without them.
 */
export function currentNodeOptions(): string[] {
  return [...productionNodeFlags(ROOT), ...(process.env.BENCH_HTTP_NODE_OPTIONS ?? '').split(' ').filter(Boolean)];
}

/** The builds a same-run comparison starts: this one's dist/src/main.js, and the baseline's if given. */
export function buildSources(baseline: BaselineBuild | undefined) {
  return [
    { name: 'current' as const, ref: 'this worktree', script: join(DIST_BENCH, '..', 'src', 'main.js'), nodeOptions: currentNodeOptions() },
    ...(baseline
      ? [
          {
            name: 'baseline' as const,
            ref: baseline.ref,
            script: baseline.mainScript,
            // <build>/dist/src/main.js: the baseline's own production flags (none before issue 14's).
            nodeOptions: productionNodeFlags(join(baseline.mainScript, '..', '..', '..')),
          },
        ]
      : []),
  ];
}

interface Build {
  readonly name: 'current' | 'baseline';
  readonly ref: string;
  readonly nodeOptions: readonly string[];
  readonly service: Service;
  readonly databaseUrl: string;
  readonly ids: readonly string[];
  readonly rounds: Map<number, { cpu: number; requests: number; seconds: number; failures: number }>;
}

/**
 * CPU seconds of each build's service process per deposit (issue 14), at each connection count: both
 * processes run dist/src/main.js (as deployed) on a fresh database of their own, with the same
 * environment; rounds alternate between them. A round's window runs from the first request until the
 * projections have applied its last deposit, so that their work is counted for the deposits that
 * caused it.
 */
async function measureCpuPerRequest(server: BenchServer, settings: HttpSettings, baseline: BaselineBuild | undefined): Promise<void> {
  const sources = buildSources(baseline);
  const builds: Build[] = [];
  const databases: Array<{ close(): Promise<void> }> = [];
  try {
    for (const source of sources) {
      const database = await server.database(`ledger_bench_cpu_${source.name}`);
      databases.push(database);
      const service = await startService(database.url, settings, [...source.nodeOptions], source.script);
      builds.push({
        ...source,
        service,
        databaseUrl: database.url,
        ids: await seedAccounts(database.url, settings.accounts),
        rounds: new Map(),
      });
    }
    for (const connections of settings.cpuConnections) {
      const load = { ...settings, connections };
      for (const build of builds) {
        await waitForCheckpoints(build.databaseUrl);
        if (settings.warmupSeconds > 0) await run(build.service, 'deposit', build.ids, load, settings.warmupSeconds);
      }
      console.error(
        `http: CPU per deposit, ${connections} connection(s), ${builds.map((b) => `${b.name} (${b.ref})`).join(' / ')}, ${settings.cpuRounds} alternating rounds of ${settings.cpuSeconds / settings.cpuRounds} s…`,
      );
      for (let index = 0; index < settings.cpuRounds; index++) {
        for (const build of index % 2 === 0 ? builds : [...builds].reverse()) {
          await waitForCheckpoints(build.databaseUrl);
          const before = cpuSeconds(build.service.pid);
          const started = performance.now();
          const { result } = await run(build.service, 'deposit', build.ids, load, settings.cpuSeconds / settings.cpuRounds);
          await waitForCheckpoints(build.databaseUrl);
          const total = build.rounds.get(connections) ?? { cpu: 0, requests: 0, seconds: 0, failures: 0 };
          build.rounds.set(connections, {
            cpu: total.cpu + cpuSeconds(build.service.pid) - before,
            requests: total.requests + result.requests.total,
            seconds: total.seconds + (performance.now() - started) / 1000,
            failures: total.failures + result.non2xx + result.errors + result.timeouts,
          });
        }
      }
    }
    for (const connections of settings.cpuConnections) {
      const perRequest = (build: Build) => {
        const total = build.rounds.get(connections)!;
        return (total.cpu * 1000) / total.requests;
      };
      const other = builds.find((build) => build.name === 'baseline');
      for (const build of builds) {
        const total = build.rounds.get(connections)!;
        report(
          `service CPU per deposit, ${connections} connection(s): ${build.name} build (${build.ref})`,
          round(perRequest(build), 3),
          'ms CPU/request',
          {
            group: 'http',
            key: `http.cpu.c${connections}.${build.name}`,
            ref: build.ref,
            ...(build.nodeOptions.length > 0 ? { nodeOptions: build.nodeOptions.join(' ') } : {}),
            connections,
            requests: total.requests,
            failures: total.failures,
            cpuSeconds: round(total.cpu, 2),
            cpuTickSeconds,
            requestsPerSecond: round(total.requests / total.seconds),
            ...(build.name === 'current' && other ? { baselineToCurrent: round(perRequest(other) / perRequest(build), 3) } : {}),
          },
        );
      }
    }
    for (const build of builds) {
      report(`service peak RSS (VmHWM): ${build.name} build (${build.ref})`, round(build.service.highWaterMark() / MB, 1), 'MB', {
        group: 'http',
        key: `http.cpu.rss.${build.name}`,
        ref: build.ref,
      });
    }
  } finally {
    for (const build of builds) await build.service.stop();
    for (const database of databases) await database.close();
  }
}

/** Runs parts 2 and 3 (and the profile) on a fresh database of `server`. */
export async function runHttpBench(server: BenchServer, settings = httpSettings()): Promise<{ profile?: ProfileSummary }> {
  if (settings.parts === 'cpu') {
    const baseline = prepareBaseline(ROOT);
    try {
      await measureCpuPerRequest(server, settings, baseline);
    } finally {
      baseline?.cleanup();
    }
    return {};
  }
  const database = await server.database('ledger_bench_http');
  let service: Service | undefined;
  try {
    service = await startService(database.url, settings, productionNodeFlags(ROOT)); // runs the migrations
    console.error(`http: opening ${settings.accounts} accounts…`);
    const ids = await seedAccounts(database.url, settings.accounts);
    await waitForProjections(service);
    if (settings.parts === 'all') {
      const base = {
        connections: settings.connections,
        seconds: settings.seconds,
        accounts: settings.accounts,
        poolSize: settings.poolSize,
      };

      const [bareDeposits, deposits] = await measurePair(service, 'bare-deposit', 'deposit', ids, settings);
      const halfRate = Math.max(1, Math.round(deposits.requestsPerSecond / 2));
      const halfDeposits = await measureAtRate(service, 'deposit', ids, settings, halfRate);
      reportLoad('deposits (POST /accounts/{id}/deposits)', 'http.deposits.app', deposits, {
        ...base,
        ratioToBare: round(deposits.requestsPerSecond / bareDeposits.requestsPerSecond, 3),
      });
      reportLoad('deposits: bare endpoint (same SQL by hand)', 'http.deposits.bare', bareDeposits, base);
      reportLoad(`deposits at half the peak rate (${halfRate} req/s offered)`, 'http.deposits.app.half', halfDeposits, {
        ...base,
        offeredRate: halfRate,
      });
      // The same open-loop rate on the service and on the bare endpoint (its same-run baseline), in turn.
      const poissonSettings = {
        seconds: settings.seconds,
        accounts: settings.accounts,
        poolSize: settings.poolSize,
        offeredRate: halfRate,
      };
      // The projection lag of issue 14 is sampled during this open-loop run at half the peak rate.
      const lag = new ProjectionLagSampler(database.url, settings.lagPollMs);
      await lag.start();
      const poisson = await measurePoisson(service, 'deposit', ids, settings.seconds, halfRate, lag);
      const lags = await lag.stop();
      const barePoisson = await measurePoisson(service, 'bare-deposit', ids, settings.seconds, halfRate);
      reportLoad(
        `deposits at half the peak rate, Poisson arrivals (${halfRate} req/s offered)`,
        'http.deposits.app.half.poisson',
        poisson,
        poissonSettings,
      );
      reportLoad(
        `deposits: bare endpoint at the same rate, Poisson arrivals (${halfRate} req/s offered)`,
        'http.deposits.bare.half.poisson',
        barePoisson,
        poissonSettings,
      );
      for (const [projection, { applied, everySegment }] of lags) {
        for (const [values, key, what] of [
          [applied, `http.lag.${projection}`, 'applied by the segment owning the stream'],
          [everySegment, `http.lag-every-segment.${projection}`, 'passed by every segment'],
        ] as const) {
          report(
            `projection lag p99 of ${projection}, ${what}, at half the peak rate (${halfRate} deposits/s, Poisson)`,
            round(percentile(values, 99), 1),
            'ms',
            {
              group: 'http',
              key,
              projection,
              offeredRate: halfRate,
              p50Ms: round(percentile(values, 50), 1),
              p99Ms: round(percentile(values, 99), 1),
              maxMs: round(values.at(-1) ?? Number.NaN, 1),
              samples: values.length,
              pollMs: settings.lagPollMs,
            },
          );
        }
      }

      const [bareReads, reads] = await measurePair(service, 'bare-read', 'read', ids, settings);
      reportLoad('reads (GET /accounts/{id})', 'http.reads.app', reads, {
        ...base,
        ratioToBare: round(reads.requestsPerSecond / bareReads.requestsPerSecond, 3),
      });
      reportLoad('reads: bare endpoint (same row by hand)', 'http.reads.bare', bareReads, base);
      report('service peak RSS (VmHWM, whole run)', round(service.highWaterMark() / MB, 1), 'MB', { group: 'http', key: 'http.rss.peak' });
      await service.stop();
      service = undefined;

      const baseline = prepareBaseline(ROOT);
      try {
        await measureCpuPerRequest(server, settings, baseline);
      } finally {
        baseline?.cleanup();
      }
    }

    await service?.stop(); // the profiled service below is a process of its own
    service = undefined;
    if (!settings.profile) return {};
    const profileDir = mkdtempSync(join(tmpdir(), 'ledger-bench-profile-'));
    try {
      service = await startService(database.url, settings, [...productionNodeFlags(ROOT), '--cpu-prof', `--cpu-prof-dir=${profileDir}`]);
      console.error(`http: profiling the service under the deposit load (${settings.profileSeconds} s)…`);
      await run(service, 'deposit', ids, settings, settings.warmupSeconds);
      const fromUs = monotonicMicros();
      const profiled = merge([await run(service, 'deposit', ids, settings, settings.profileSeconds)]);
      const toUs = monotonicMicros();
      await service.stop();
      service = undefined;
      const file = readdirSync(profileDir).find((name) => name.endsWith('.cpuprofile'));
      if (!file) throw new Error('the profiled service wrote no .cpuprofile');
      if (process.env.BENCH_KEEP_PROFILE) copyFileSync(join(profileDir, file), process.env.BENCH_KEEP_PROFILE);
      // Only the measured load: not the start (module loading, migrations), the warm-up or the shutdown.
      const summary = summariseProfileFile(join(profileDir, file), 30, { fromUs, toUs });
      report('deposits under the profiler', round(profiled.requestsPerSecond), 'req/s', {
        group: 'profile',
        key: 'profile.deposits',
        p99Ms: profiled.p99,
      });
      return { profile: summary };
    } finally {
      rmSync(profileDir, { recursive: true, force: true });
    }
  } finally {
    await service?.stop();
    await database.close();
  }
}

if (isMain(import.meta.url)) {
  const server = await openBenchServer();
  try {
    console.error(JSON.stringify(await describeMachine(server.url)));
    const { profile } = await runHttpBench(server);
    if (profile) console.log(`\n${profileTables(profile)}`);
  } catch (error) {
    console.error(error);
    process.exitCode = 1;
  } finally {
    await server.close();
  }
}
