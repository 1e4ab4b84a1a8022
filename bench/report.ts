// Turns a run's figures into the targets of issues 7 and 14, markdown tables and docs/BENCHMARKS.md.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Figure } from './bench-database.js';
import { type ProfileSummary, profileTables } from './cpuprofile-summary.js';

export interface TargetCheck {
  readonly target: string;
  readonly measured: string;
  /** null when the figure was not measured in this run. */
  readonly met: boolean | null;
}

export interface BenchResults {
  readonly date: string;
  readonly startedAt: string;
  readonly durationSeconds: number;
  readonly parts: readonly string[];
  readonly machine: Record<string, string | number>;
  readonly settings: Record<string, object>;
  readonly figures: readonly Figure[];
  readonly targets: readonly TargetCheck[];
  readonly profile?: ProfileSummary;
}

const byKey = (figures: readonly Figure[], key: string) => figures.find((figure) => figure.key === key);
/** A figure's text field, or `fallback`. */
const text = (value: unknown, fallback = ''): string => (typeof value === 'string' ? value : fallback);
const num = (value: unknown): number => (typeof value === 'number' ? value : Number.NaN);
const fmt = (value: unknown, digits = 0): string =>
  typeof value === 'number' && Number.isFinite(value)
    ? value.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '–';

/** The targets of issues 7 and 14, as ratios measured in the same run (never asserted: reported). */
export function evaluateTargets(figures: readonly Figure[]): TargetCheck[] {
  const deposits = byKey(figures, 'http.deposits.app');
  const half = byKey(figures, 'http.deposits.app.half');
  const poisson = byKey(figures, 'http.deposits.app.half.poisson');
  const barePoisson = byKey(figures, 'http.deposits.bare.half.poisson');
  const sameRate =
    poisson && barePoisson
      ? `; open-loop Poisson at the same rate: ${fmt(poisson.p99Ms, 1)} ms, bare endpoint ${fmt(barePoisson.p99Ms, 1)} ms`
      : '';
  const reads = byKey(figures, 'http.reads.app');
  const rss = byKey(figures, 'http.cpu.rss.current');
  // Both lag figures of each projection count (applied, and passed by every segment): the stricter wins.
  const lags = figures.filter((f) => f.group === 'http' && /^http\.lag(-every-segment)?\./.test(String(f.key)));
  const worstLag = lags.length ? lags.reduce((worst, f) => (num(f.p99Ms) > num(worst.p99Ms) ? f : worst)) : undefined;
  const check = (
    issue: number,
    figure: Figure | undefined,
    target: string,
    value: number,
    measured: string,
    met: (value: number) => boolean,
  ): TargetCheck => ({
    target: `${target} (issue ${issue})`,
    measured: figure && Number.isFinite(value) ? measured : 'not measured',
    met: figure && Number.isFinite(value) ? met(value) : null,
  });
  const appendToInsert = (concurrency: number, least: number) => {
    const store = byKey(figures, `append.c${concurrency}.x1.store`);
    const insert = byKey(figures, `append.c${concurrency}.x1.pg-insert`);
    return check(
      14,
      store,
      `single-event appends at ${concurrency} client${concurrency === 1 ? '' : 's'} ≥ ${least} × one prepared INSERT per append`,
      num(store?.ratioToBaseline),
      `${fmt(store?.ratioToBaseline, 2)} × (${fmt(store?.value)} against ${fmt(insert?.value)} events/s)`,
      (v) => v >= least,
    );
  };
  const pgbench32 = byKey(figures, 'append.c32.x1.pgbench');
  const store32 = byKey(figures, 'append.c32.x1.store');
  const cpuTarget = (connections: number) => {
    const current = byKey(figures, `http.cpu.c${connections}.current`);
    const baseline = byKey(figures, `http.cpu.c${connections}.baseline`);
    return check(
      14,
      current,
      `service CPU per deposit at ${connections} connection${connections === 1 ? '' : 's'} ≥ 1.5 × lower than the baseline commit's`,
      num(current?.baselineToCurrent),
      `${fmt(current?.baselineToCurrent, 2)} × (${fmt(current?.value, 3)} ms against ${fmt(baseline?.value, 3)} ms of ${text(baseline?.ref, '?')})`,
      (v) => v >= 1.5,
    );
  };
  const oneSegment = byKey(figures, 'transfers.settle.ratio-to-one');
  const toCeiling = byKey(figures, 'transfers.settle.ratio-to-ceiling');
  const segmented = byKey(figures, 'transfers.settle.segmented');
  const one = byKey(figures, 'transfers.settle.one-segment');
  const ceiling = byKey(figures, 'transfers.settle.ceiling');
  const latency = byKey(figures, 'transfers.latency');
  const backlog = byKey(figures, 'transfers.latency.backlog');
  const p99 = latency ? (typeof latency.p99Ms === 'number' ? latency.p99Ms : Number.POSITIVE_INFINITY) : Number.NaN;
  return [
    check(
      15,
      oneSegment,
      'a 5,000-transfer backlog settles ≥ 4 × faster segmented than with one segment',
      num(oneSegment?.value),
      `${fmt(oneSegment?.value, 2)} × (${fmt(segmented?.value, 1)} against ${fmt(one?.value, 1)} transfers/s)`,
      (v) => v >= 4,
    ),
    check(
      15,
      toCeiling,
      'segmented settle rate ≥ 0.5 × the same appends straight through the event store',
      num(toCeiling?.value),
      `${fmt(toCeiling?.value, 2)} × (${fmt(segmented?.value, 1)} against ${fmt(ceiling?.value, 1)} transfers/s)`,
      (v) => v >= 0.5,
    ),
    {
      target: `transfer p99 from 202 to completed < 1 s at ${fmt(latency?.offeredRate)} transfers/s open-loop (issue 15)`,
      measured: latency
        ? `p50 ${Number.isFinite(num(latency.p50Ms)) ? `${fmt(latency.p50Ms, 0)} ms` : 'not completed'}, p99 ${Number.isFinite(p99) ? `${fmt(p99, 0)} ms` : `not completed within the load + ${fmt(latency.drainSeconds)} s`} (${fmt(latency.notCompletedAfterDrain)} of ${fmt(latency.accepted)} not completed)`
        : 'not measured',
      met: latency ? p99 < 1000 : null,
    },
    check(15, backlog, 'no backlog when that load stops', num(backlog?.value), `${fmt(backlog?.value)} transfers pending`, (v) => v === 0),
    appendToInsert(1, 0.8),
    appendToInsert(8, 0.7),
    appendToInsert(32, 0.7),
    check(
      14,
      store32 && pgbench32 ? store32 : undefined,
      'single-event appends at 32 clients ≥ 0.5 × pgbench (one prepared INSERT per transaction)',
      num(store32?.ratioToPgbench),
      `${fmt(store32?.ratioToPgbench, 2)} × (${fmt(store32?.value)} against ${fmt(pgbench32?.value)} events/s)`,
      (v) => v >= 0.5,
    ),
    cpuTarget(1),
    cpuTarget(32),
    check(
      14,
      worstLag,
      'projection lag p99 < 100 ms at half the peak deposit rate, every projection (applied, and passed by every segment)',
      num(worstLag?.p99Ms),
      `${fmt(worstLag?.p99Ms, 1)} ms (${text(worstLag?.projection)}${String(worstLag?.key).startsWith('http.lag-every-segment.') ? ', every segment' : ''}, the slowest) at ${fmt(worstLag?.offeredRate)} req/s`,
      (v) => v < 100,
    ),
    check(14, rss, 'peak RSS of the service < 150 MB', num(rss?.value), `${fmt(rss?.value, 1)} MB (VmHWM)`, (v) => v < 150),
    check(
      7,
      deposits,
      'deposits over HTTP ≥ 0.6 × bare endpoint',
      num(deposits?.ratioToBare),
      `${fmt(deposits?.ratioToBare, 2)} × (${fmt(deposits?.value)} req/s)`,
      (v) => v >= 0.6,
    ),
    check(
      7,
      half,
      'deposit p99 < 25 ms at half the peak rate',
      num(half?.p99Ms),
      `${fmt(half?.p99Ms, 1)} ms at ${fmt(half?.offeredRate)} req/s (autocannon)${sameRate}`,
      (v) => v < 25,
    ),
    check(
      7,
      reads,
      'reads over HTTP ≥ 0.8 × bare endpoint',
      num(reads?.ratioToBare),
      `${fmt(reads?.ratioToBare, 2)} × (${fmt(reads?.value)} req/s)`,
      (v) => v >= 0.8,
    ),
  ];
}

const verdict = (met: boolean | null) => (met === null ? '–' : met ? 'met' : '**not met**');

export function targetTable(targets: readonly TargetCheck[]): string {
  return ['| target | measured | |', '|---|---|---|', ...targets.map((t) => `| ${t.target} | ${t.measured} | ${verdict(t.met)} |`)].join(
    '\n',
  );
}

function appendTable(figures: readonly Figure[]): string | undefined {
  const stores = figures.filter((f) => f.group === 'append' && String(f.key).endsWith('.store'));
  if (stores.length === 0) return undefined;
  const rows = stores.map((store) => {
    const prefix = String(store.key).slice(0, -'.store'.length);
    const insert = byKey(figures, `${prefix}.pg-insert`);
    const transaction = byKey(figures, `${prefix}.pg-transaction`);
    const pgbench = byKey(figures, `${prefix}.pgbench`);
    const label = `${store.eventsPerAppend === 1 ? 'single-event' : `${store.eventsPerAppend}-event`} appends, concurrency ${store.concurrency}`;
    return [
      label,
      fmt(store.value),
      `${fmt(store.p50Ms, 1)} / ${fmt(store.p99Ms, 1)}`,
      fmt(insert?.value),
      `${fmt(insert?.p50Ms, 1)} / ${fmt(insert?.p99Ms, 1)}`,
      `**${fmt(store.ratioToBaseline, 2)}**`,
      transaction ? `${fmt(transaction.value)} (${fmt(store.ratioToTransaction, 2)} ×)` : '–',
      pgbench ? `${fmt(pgbench.value)} (${fmt(store.ratioToPgbench, 2)} ×)` : '–',
    ].join(' | ');
  });
  const missing = byKey(figures, 'append.pgbench.missing')
    ? '\n\npgbench was not installed for this run: its column is empty (install postgresql-client or set BENCH_PGBENCH).'
    : '';
  return `${[
    '| appends (exact expected version) | event store events/s | p50 / p99 ms | pg, one prepared INSERT per append, events/s | p50 / p99 ms | store ÷ INSERT | pg BEGIN/SELECT/INSERT/COMMIT events/s (store ÷ it) | pgbench, one INSERT per transaction, events/s (store ÷ it) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((row) => `| ${row} |`),
  ].join('\n')}${missing}`;
}

function httpTable(figures: readonly Figure[]): string | undefined {
  const rows: string[] = [];
  for (const [label, app, bare] of [
    ['deposits `POST /accounts/{id}/deposits`', 'http.deposits.app', 'http.deposits.bare'],
    ['reads `GET /accounts/{id}`', 'http.reads.app', 'http.reads.bare'],
  ] as const) {
    const a = byKey(figures, app);
    const b = byKey(figures, bare);
    if (!a || !b) continue;
    rows.push(
      `| ${label}, ${a.connections} connections | ${fmt(a.value)} | ${fmt(a.p50Ms, 1)} / ${fmt(a.p99Ms, 1)} | ${fmt(b.value)} | ${fmt(b.p50Ms, 1)} / ${fmt(b.p99Ms, 1)} | **${fmt(a.ratioToBare, 2)}** | ${fmt(a.peakRssMB, 1)} / ${fmt(b.peakRssMB, 1)} | ${fmt(num(a.failures) + num(b.failures))} |`,
    );
  }
  const half = byKey(figures, 'http.deposits.app.half');
  if (half) {
    rows.push(
      `| deposits at half the peak rate (${fmt(half.offeredRate)} req/s offered by autocannon, 32 connections firing together) | ${fmt(half.value)} | ${fmt(half.p50Ms, 1)} / ${fmt(half.p99Ms, 1)} | | | | ${fmt(half.peakRssMB, 1)} | ${fmt(half.failures)} |`,
    );
  }
  const poisson = byKey(figures, 'http.deposits.app.half.poisson');
  if (poisson) {
    const bare = byKey(figures, 'http.deposits.bare.half.poisson');
    rows.push(
      `| deposits at half the peak rate (${fmt(poisson.offeredRate)} req/s, open-loop Poisson arrivals) | ${fmt(poisson.value)} | ${fmt(poisson.p50Ms, 1)} / ${fmt(poisson.p99Ms, 1)} | ${fmt(bare?.value)} | ${fmt(bare?.p50Ms, 1)} / ${fmt(bare?.p99Ms, 1)} | | ${fmt(poisson.peakRssMB, 1)} / ${fmt(bare?.peakRssMB, 1)} | ${fmt(num(poisson.failures) + num(bare?.failures ?? 0))} |`,
    );
  }
  if (rows.length === 0) return undefined;
  const rss = byKey(figures, 'http.rss.peak');
  return [
    '| over HTTP | service req/s | p50 / p99 ms | bare endpoint req/s | p50 / p99 ms | ratio | peak RSS MB (service / bare phase) | failed requests |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
    ...(rss ? [`| peak RSS of the service over the whole run (VmHWM) | | | | | | ${fmt(rss.value, 1)} | |`] : []),
  ].join('\n');
}

function cpuTable(figures: readonly Figure[]): string | undefined {
  const rows: string[] = [];
  for (const connections of [1, 32]) {
    const current = byKey(figures, `http.cpu.c${connections}.current`);
    if (!current) continue;
    const baseline = byKey(figures, `http.cpu.c${connections}.baseline`);
    rows.push(
      `| deposits, ${connections} connection${connections === 1 ? '' : 's'} | ${fmt(current.value, 3)} (${fmt(current.requestsPerSecond)} req/s) | ${baseline ? `${fmt(baseline.value, 3)} (${fmt(baseline.requestsPerSecond)} req/s)` : '–'} | ${baseline ? `**${fmt(current.baselineToCurrent, 2)}**` : '–'} | ${fmt(num(current.failures) + num(baseline?.failures ?? 0))} |`,
    );
  }
  if (rows.length === 0) return undefined;
  const rssCurrent = byKey(figures, 'http.cpu.rss.current');
  const rssBaseline = byKey(figures, 'http.cpu.rss.baseline');
  const ref = text(byKey(figures, 'http.cpu.c1.baseline')?.ref, text(byKey(figures, 'http.cpu.c32.baseline')?.ref, 'none given'));
  return [
    `| service CPU per request, dist/src/main.js of each build | current build: ms CPU/request | baseline ${ref}: ms CPU/request | baseline ÷ current | failed requests |`,
    '|---|---:|---:|---:|---:|',
    ...rows,
    `| peak RSS (VmHWM) of each service process | ${fmt(rssCurrent?.value, 1)} MB | ${fmt(rssBaseline?.value, 1)} MB | | |`,
  ].join('\n');
}

/**
 * Per projection: the lag until the segment owning the deposit's stream applied it, and until every
 * segment passed it. Results before 2026-12-06 evening have one figure per checkpoint row instead.
 */
function lagTable(figures: readonly Figure[]): string | undefined {
  const lags = figures.filter((f) => f.group === 'http' && String(f.key).startsWith('http.lag.'));
  if (lags.length === 0) return undefined;
  const title = `projection lag at half the peak deposit rate (${fmt(lags[0].offeredRate)} deposits/s, open-loop Poisson)`;
  const cells = (f: Figure | undefined) => (f ? `${fmt(f.p50Ms, 1)} / ${fmt(f.p99Ms, 1)} / ${fmt(f.maxMs, 1)}` : '–');
  const every = (f: Figure) => byKey(figures, `http.lag-every-segment.${text(f.projection)}`);
  if (!lags.some(every)) {
    return [
      `| ${title}, per checkpoint row | p50 / p99 / max ms | samples |`,
      '|---|---:|---:|',
      ...lags.map((f) => `| ${text(f.projection)} | ${cells(f)} | ${fmt(f.samples)} |`),
    ].join('\n');
  }
  return [
    `| ${title} | applied by the owning segment: p50 / p99 / max ms | passed by every segment: p50 / p99 / max ms | samples |`,
    '|---|---:|---:|---:|',
    ...lags.map((f) => `| ${text(f.projection)} | ${cells(f)} | ${cells(every(f))} | ${fmt(f.samples)} |`),
  ].join('\n');
}

function transfersTable(figures: readonly Figure[]): string | undefined {
  const settle = ['transfers.settle.one-segment', 'transfers.settle.segmented', 'transfers.settle.ceiling']
    .map((key) => byKey(figures, key))
    .filter((f): f is Figure => f !== undefined);
  const latency = byKey(figures, 'transfers.latency');
  if (settle.length === 0 && !latency) return undefined;
  const rows = settle.map(
    (f) =>
      `| ${f.figure} | ${fmt(f.value, 1)} transfers/s | ${fmt(f.settled)} settled in ${fmt(f.seconds, 1)} s${f.complete ? '' : ' (capped: not all)'} |`,
  );
  for (const key of ['transfers.settle.ratio-to-one', 'transfers.settle.ratio-to-ceiling']) {
    const f = byKey(figures, key);
    if (f) rows.push(`| ${f.figure} | **${fmt(f.value, 2)} ×** | target ≥ ${fmt(f.target, 1)} × |`);
  }
  if (latency) {
    const ms = (value: unknown) => (typeof value === 'number' ? `${fmt(value, 0)} ms` : 'not completed');
    rows.push(
      `| ${latency.figure} | p50 ${ms(latency.p50Ms)} / p99 ${ms(latency.p99Ms)} | ${fmt(latency.accepted)} accepted, ${fmt(latency.notCompletedAfterDrain)} not completed ${fmt(latency.drainSeconds)} s after the load, ${fmt(latency.failures)} failed requests |`,
    );
  }
  const backlog = byKey(figures, 'transfers.latency.backlog');
  if (backlog) rows.push(`| ${backlog.figure} | ${fmt(backlog.value)} | target 0 |`);
  return ['| transfers | value | notes |', '|---|---:|---|', ...rows].join('\n');
}

function relayTable(figures: readonly Figure[]): string | undefined {
  const keys = [
    'relay.deposits',
    'relay.published',
    'relay.catch-up',
    'relay.lag.ms',
    'relay.lag.events',
    'relay.drain',
    'relay.exactly-once',
    'relay.baseline.sequential',
    'relay.baseline.pipelined',
  ];
  const rows = keys
    .map((key) => byKey(figures, key))
    .filter((f): f is Figure => f !== undefined)
    .map((f) => {
      const notes = [
        f.events !== undefined ? `${fmt(f.events)} events` : '',
        f.connections !== undefined ? `${fmt(f.connections)} connections, ${fmt(f.seconds)} s` : '',
        f.inLogOrder !== undefined ? (f.inLogOrder === true ? 'stored in log order' : '**not stored in log order**') : '',
        f.complete !== undefined ? (f.complete === true && f.duplicates === 0 ? 'every event once' : '**events missing or repeated**') : '',
      ].filter(Boolean);
      const value = typeof f.value === 'number' ? fmt(f.value) : text(f.value);
      return `| ${f.figure} | ${value} ${f.unit} | ${notes.join(', ')} |`;
    });
  const ratio = byKey(figures, 'relay.drain.ratio-to-baseline');
  if (ratio) rows.push(`| ${ratio.figure} | **${fmt(ratio.value, 2)} ×** | against the ${text(ratio.baseline)} loop |`);
  return rows.length ? ['| relay to NATS JetStream | value | notes |', '|---|---:|---|', ...rows].join('\n') : undefined;
}

function otherTable(figures: readonly Figure[]): string | undefined {
  const rows = figures
    .filter((f) => f.group === 'snapshots' || f.group === 'projections')
    .map((f) => {
      const extra = [
        f.p99Ms !== undefined ? `p99 ${fmt(f.p99Ms, 2)} ms` : '',
        f.ratioToKeysetScan !== undefined ? `${fmt(f.ratioToKeysetScan, 2)} × the keyset scan` : '',
        f.samples !== undefined ? `${fmt(f.samples)} samples` : '',
        f.events !== undefined ? `${fmt(f.events)} events` : '',
        f.rounds !== undefined ? `${fmt(f.rounds)} rounds` : '',
      ].filter(Boolean);
      return `| ${f.figure} | ${fmt(f.value, f.unit === 'ms' ? 2 : 0)} ${f.unit} | ${extra.join(', ')} |`;
    });
  return rows.length ? ['| loading, rebuild, lag | value | notes |', '|---|---:|---|', ...rows].join('\n') : undefined;
}

/** The tables printed at the end of `npm run bench` and shown in docs/BENCHMARKS.md. */
export function figureTables(results: BenchResults): string {
  return [
    targetTable(results.targets),
    appendTable(results.figures),
    httpTable(results.figures),
    cpuTable(results.figures),
    lagTable(results.figures),
    otherTable(results.figures),
    transfersTable(results.figures),
    relayTable(results.figures),
  ]
    .filter(Boolean)
    .join('\n\n');
}

function settingsTable(results: BenchResults): string {
  const s = results.settings as Record<string, Record<string, unknown>>;
  const rows: Array<[string, string]> = [];
  if (s.append) {
    rows.push([
      'appends',
      `${fmt(s.append.streams)} streams; per configuration and writer ${s.append.seconds} s measured in ${s.append.rounds} rounds alternating between the writers, each after ${s.append.warmupSeconds} s of warm-up (pgbench: none, its connection time excluded); pools: the event store's TypeORM pool and the baselines' pg.Pool all of size = concurrency (2 for the store at concurrency 1, see below); pgbench with -c = -j = concurrency`,
    ]);
  }
  if (s.http) {
    rows.push([
      'HTTP',
      `autocannon, ${s.http.connections} connections; per endpoint ${s.http.seconds} s measured in ${s.http.rounds} rounds alternating between the bare endpoint and the service, after ${s.http.warmupSeconds} s of warm-up each; ${fmt(s.http.accounts)} accounts; DATABASE_POOL_SIZE=${s.http.poolSize}; LOG_LEVEL=warn; rate limits 10,000,000/min (the limiter runs, never throttles)`,
    ]);
    rows.push([
      'CPU per request',
      `dist/src/main.js of the current build${s.http.baseline ? ` and of ${text(s.http.baseline)}` : ' (no baseline build given: BENCH_HTTP_BASELINE_REF / BENCH_HTTP_BASELINE_DIR)'}, each on a fresh database with ${fmt(s.http.accounts)} accounts; at ${(s.http.cpuConnections as number[] | undefined)?.join(' and ') ?? '1 and 32'} connections, ${s.http.cpuSeconds} s per build measured in ${s.http.cpuRounds} alternating rounds after ${s.http.warmupSeconds} s of warm-up each`,
    ]);
    rows.push([
      'projection lag',
      `sampled during the open-loop Poisson deposit run at half the peak rate (${s.http.seconds} s), checkpoints polled every ${s.http.lagPollMs} ms`,
    ]);
    rows.push([
      'profile',
      s.http.profile
        ? `node --cpu-prof on a second service process, ${s.http.profileSeconds} s of the same deposit load (only that window summarised)`
        : 'skipped (BENCH_PROFILE=0)',
    ]);
  }
  if (s.snapshots)
    rows.push(['snapshots', `one account of ${fmt(s.snapshots.streamEvents)} events, ${s.snapshots.rounds} rounds of load and of deposit`]);
  if (s.projections) {
    rows.push([
      'projections',
      `${fmt(s.projections.events)} events (${s.projections.eventsPerAccount} per account); lag at ${s.projections.lagRatePerSecond} deposits/s for ${s.projections.lagSeconds} s`,
    ]);
  }
  if (s.transfers) {
    rows.push([
      'transfers',
      `settle rate: ${fmt(s.transfers.backlog)} transfers between ${fmt(s.transfers.accounts)} accounts accepted over HTTP (${s.transfers.clients} clients) by a service with projections off, then settled by a service on a copy of that database (one segment reacting one event at a time, then PROJECTION_SEGMENTS=${text(s.transfers.segments)} with the default lanes), at most ${s.transfers.settleMaxSeconds} s each; ceiling: the same appends through EventStore.append by ${s.transfers.workers} workers; latency: ${s.transfers.rate} transfers/s open-loop (fixed rate) for ${s.transfers.latencySeconds} s, then ${s.transfers.drainSeconds} s to drain`,
    ]);
  }
  if (s.relay) {
    rows.push([
      'relay',
      `the compiled service with NATS_URL (one segment, NATS_PUBLISH_CONCURRENCY: ${text(s.relay.publishConcurrency)}) and its own nats-server -js; ${fmt(s.relay.accounts)} accounts; deposits over HTTP on ${s.relay.connections} connections for ${s.relay.seconds} s, relay lag polled every 100 ms; then ${fmt(s.relay.backlog)} deposits written with the broker down, drained once it is back; baselines: the stream's messages published to new streams from a loop, one at a time and ${s.relay.pipeline} in flight`,
    ]);
  }
  return ['| part | settings |', '|---|---|', ...rows.map(([part, text]) => `| ${part} | ${text} |`)].join('\n');
}

export function renderBenchmarksDoc(results: BenchResults, root: string): string {
  const machine = ['| machine | |', '|---|---|', ...Object.entries(results.machine).map(([key, value]) => `| ${key} | ${value} |`)].join(
    '\n',
  );
  const analysisFile = join(root, 'bench', 'analysis.md');
  const analysis = existsSync(analysisFile) ? readFileSync(analysisFile, 'utf8').trim() : '';
  return `# Benchmarks

<!-- Generated by \`npm run bench\` (bench/run-all.bench.ts): the next run rewrites this file. The
reading of the profile comes from bench/analysis.md, written by hand. -->

Last run: ${results.startedAt.replace('T', ' ').slice(0, 16)} UTC, ${Math.round(results.durationSeconds / 6) / 10} min, parts: ${results.parts.join(', ')}.
Every figure is also in \`bench/results/${results.date}.json\`. The service and its baselines are measured
**in the same run on the same machine**: compare the ratios, not the absolute numbers, with other machines.

## Run it

\`\`\`
npm run bench               # everything (about 9 minutes on 2 cores); writes bench/results/<date>.json and this file
BENCH_HTTP_BASELINE_REF=<commit> npm run bench   # also measures that commit's service CPU per request, same run
npm run bench:append        # part 1 alone
npm run bench:http          # parts 2 and 3, and the profile
npm run bench:snapshots     # loading a 10,000-event account, without and with snapshots
npm run bench:projections   # rebuild and lag, 1,000,000 events
npm run bench:transfers     # settle rate of a 5,000-transfer backlog (one segment, default, ceiling) and 202 → completed latency
npm run bench:relay         # the NATS relay: published events/s, lag under deposit load, a backlog drained, against a publishing loop
BENCH_HTTP_BASELINE_REF=<commit> npm run bench:hot-account   # deposits to ONE account from 32 connections, against that commit's build (not in npm run bench; BENCH_HOT_CONNECTIONS, BENCH_HOT_SECONDS, BENCH_HOT_ROUNDS)
node dist/bench/cpuprofile-summary.js <file.cpuprofile>           # self time per function and per package
node dist/bench/run-all.bench.js --render bench/results/<date>.json  # rewrite this file from a stored run
\`\`\`

| variable | default | |
|---|---|---|
| BENCH_ONLY | all | e.g. \`append,http\`; parts: append, http, snapshots, projections, transfers, relay |
| BENCH_DATABASE_URL | embedded | a PostgreSQL server where the user may CREATE DATABASE |
| BENCH_APPEND_SECONDS / BENCH_APPEND_ROUNDS / BENCH_APPEND_WARMUP_SECONDS / BENCH_APPEND_STREAMS | 8 / 4 / 0.5 / 10,000 | |
| BENCH_HTTP_SECONDS / BENCH_HTTP_ROUNDS / BENCH_HTTP_WARMUP_SECONDS / BENCH_HTTP_CONNECTIONS / BENCH_HTTP_ACCOUNTS / BENCH_HTTP_POOL_SIZE | 10 / 2 / 3 / 32 / 1,000 / 10 | |
| BENCH_HTTP_BASELINE_REF / BENCH_HTTP_BASELINE_DIR | – / – | another commit (exported with \`git archive\`, built with \`tsc\`), or a checkout used as it is, whose service is measured next to the current one |
| BENCH_HTTP_CPU_SECONDS / BENCH_HTTP_CPU_ROUNDS / BENCH_LAG_POLL_MS | 8 / 4 / 5 | CPU per request; projection lag sampling |
| BENCH_HTTP_PARTS / BENCH_HTTP_NODE_OPTIONS | all / – | \`cpu\`: only the CPU per request and peak RSS of the two builds; \`profile\`: only the profile (bench:http run alone); every build's service runs with the node flags of its own package.json \`start:prod\` (as deployed); BENCH_HTTP_NODE_OPTIONS adds flags to the current build's only (a later V8 flag wins: \`--max-semi-space-size=16 --heap-growing-percent=0\`, V8's defaults, measures the flags against the same build with BENCH_HTTP_BASELINE_DIR=.) |
| BENCH_PGBENCH | pgbench | path of pgbench (its column is skipped when missing) |
| BENCH_PROFILE / BENCH_PROFILE_SECONDS / BENCH_KEEP_PROFILE | 1 / 10 / – | \`0\` skips the profile; a path keeps the .cpuprofile |
| BENCH_STREAM_EVENTS / BENCH_ROUNDS | 10,000 / 30 | snapshots |
| BENCH_PROJECTION_EVENTS / BENCH_LAG_RATE / BENCH_LAG_SECONDS | 200,000 / 100 / 15 | projections (\`npm run bench:projections\` alone: BENCH_EVENTS, default 1,000,000) |
| BENCH_TRANSFERS_BACKLOG / _ACCOUNTS / _CLIENTS / _SETTLE_MAX_SECONDS / _WORKERS | 5,000 / 100 / 16 / 40 / PROJECTION_SEGMENTS or 4 | transfers, settle rate (PROJECTION_SEGMENTS* are passed on to the service) |
| BENCH_TRANSFERS_RATE / _LATENCY_SECONDS / _DRAIN_SECONDS | 100 / 60 / 10 | transfers, latency |
| BENCH_RELAY_SECONDS / _CONNECTIONS / _ACCOUNTS / _BACKLOG / _PIPELINE | 10 / 16 / 200 / 10 × accounts / 256 | relay (NATS_PUBLISH_CONCURRENCY is passed on to the service) |

## Machine

${machine}

The benchmark client, the service and PostgreSQL share these cores, and \`loadAverage1m\` shows how
busy the machine already was: other work running at the same time lowers every figure, and the
ratios less than the absolute numbers.

## Settings

${settingsTable(results)}

## Results

${figureTables(results)}

## How each figure is measured

- **Appends** (bench/append.bench.ts): \`EventStore.append\` of the event-sourcing core alone
  (DatabaseModule + CqrsModule + EventSourcingModule, no feature), each call one transaction with an
  exact expected version (\`NO_STREAM\` for a stream's first event). Each worker owns the streams
  i ≡ worker (mod concurrency) of 10,000 and appends to them in turn, so it always knows the version
  to expect and nothing conflicts. The measured time is cut into rounds that alternate between the
  writers (and which goes first), so that a change in the machine's other load weighs on all alike;
  percentiles are over every append of all rounds. Three baselines, same run (issue 14):
  - **one prepared INSERT per append** (the strongest, the ratio the targets use): the same rows (same
    type, data and metadata JSON, a new event id each) by ONE named (prepared) \`INSERT\` per append
    (one multi-row INSERT for 10 events), autocommit, with plain \`pg\` on a \`pg.Pool\` of the same
    size, into a table of the same columns and defaults with only \`UNIQUE (stream_id, version)\` and
    no trigger; the writer knows its next version, and the unique constraint is what would refuse a
    second writer of it;
  - **BEGIN/SELECT/INSERT/COMMIT** (issue 7's baseline): the same rows into the same \`events\` table
    with all its constraints, triggers and indexes: \`BEGIN\`; \`SELECT max(version)\` of the stream;
    refuse on a mismatch; \`INSERT … RETURNING position\`; \`COMMIT\`, named statements;
  - **pgbench** (the PostgreSQL client's own, when installed) at the same number of clients and
    threads, \`-M prepared -n\`: one single-row INSERT per transaction of a script, into a table of its
    own of the same shape, a random stream of 10,000 and the version from a sequence (so nothing
    conflicts), data and metadata JSON of the store's size passed as parameters (\`-D\`); its rate is
    pgbench's \`tps\` without the connection time, and its latency its average (no percentiles).
  Latency is per append call. The store's pool is 2 at concurrency 1; one sequential worker only ever
  uses one of them. The baselines' pools close idle connections after 200 ms so that, at 32 clients,
  all the writers' connections stay under the server's \`max_connections\`.
- **HTTP** (bench/http.bench.ts): the service runs in a process of its own
  (bench/bench-service.ts: \`createApp\`, exactly as main.ts builds it, plus a bench-only module), so
  its RSS is its own: VmRSS is sampled every 100 ms during each load, VmHWM is the peak over its
  life. autocannon sends each request to the next of the accounts (opened beforehand), with a bearer
  token holding every scope. The **bare endpoints** (bench/bare-endpoints.module.ts) live in the same
  application behind the same middleware, guards (auth, rate limiter), pipes (uuid, body validation),
  filter and interceptors, and do the equivalent SQL by hand with pg (named, prepared statements) on the service's own pools:
  a deposit is \`BEGIN\`; the stream's last version and balance; \`INSERT\` the next
  \`accounts.MoneyDeposited\` with the same data and metadata; \`COMMIT\` (retried on a lost race); a
  read is the \`account_summaries\` row by primary key. As for appends, the measured time alternates
  between the bare endpoint and the service in rounds (percentiles from every response time), and
  every round starts with the projections caught up. The projections keep running in the service
  during every load, for the bare deposits too (their events are real account events). Half the
  peak rate is autocannon's \`overallRate\` at half the measured deposit rate; autocannon corrects its
  latencies for coordinated omission when a rate is set.
  The same rate is also offered open-loop with Poisson arrivals (node:http on a keep-alive agent;
  each latency counts from the request's scheduled moment), which has none of autocannon's
  synchronized bursts, to the service and then to the bare endpoint, its same-run baseline.
- **CPU per request** (bench/http.bench.ts, \`measureCpuPerRequest\`; bench/process-cpu.ts): the
  current build's \`dist/src/main.js\` and, with \`BENCH_HTTP_BASELINE_REF\` (bench/baseline-build.ts:
  \`git archive\` of that commit into a temporary directory, this worktree's node_modules when the lock
  file is the same, else \`npm ci\`; \`tsc\`) or \`BENCH_HTTP_BASELINE_DIR\`, the baseline's, each a
  process of its own with the same environment on a fresh database of its own with the same
  accounts, projections on. autocannon sends deposits at 1 and at 32 connections, in rounds
  alternating between the two. A round's CPU is the process's utime + stime from
  \`/proc/<pid>/stat\` (every thread; clock ticks of 10 ms), from just before the first request until
  every projection checkpoint has reached the last event, so the projections' work for those deposits
  is counted; CPU per request is the sum over the rounds divided by the requests. Peak RSS is each
  process's VmHWM at the end.
- **Projection lag** (bench/projection-lag.ts): during the open-loop Poisson deposit run at half the
  peak rate, every acknowledged deposit's position (from its answer) is watched: a client polls
  \`projection_checkpoints\` every few ms, and an event's lag for a projection is the database's
  \`clock_timestamp()\` at the first poll where that checkpoint has passed the event in commit order
  \`(transaction_id, position)\`, minus the event's \`recorded_at\` (its INSERT's clock time, just
  before its commit). The poll interval bounds how much a lag is overstated.
- **Transfers** (bench/transfers.bench.ts, issue 15): the compiled service (\`dist/src/main.js\`) in
  a process of its own. Settle rate: a backlog of accepted transfers is made once, over HTTP, by a
  service with \`PROJECTIONS_ENABLED=false\`; each configuration then runs on a copy of that database
  (\`CREATE DATABASE … TEMPLATE\`), and its rate is the transfers settled (TransferCompleted or
  TransferFailed in the log, polled every 100 ms) from the moment the service answers HTTP until
  the whole backlog is settled, or over the cap. The ceiling makes, per transfer, the five appends
  the process makes (debit, SourceDebited, credit, settlement, TargetCredited + TransferCompleted)
  straight through \`EventStore.append\` with \`ANY\` (no reads, no version checks), by as many
  concurrent workers as the default segmentation. Latency: a fixed-rate open-loop sender; a
  transfer's latency is its TransferCompleted's \`recorded_at\` (the database's clock at the INSERT,
  on the same machine) minus the moment its 202 arrived, so the read table's own lag is not in it.
- **Relay** (bench/relay.bench.ts, issue 17): the compiled service with \`NATS_URL\` in a process of
  its own, and a \`nats-server -js\` of its own. Under the HTTP deposit load, the relay's lag is
  \`/admin/projections/nats-relay\` sampled every 100 ms (from its checkpoint, which moves once per
  batch: events published but not yet checkpointed count as lag); events/s published is the events
  written from the start of the load until the relay's checkpoint has passed them all, over that time.
  Its ceiling: the broker is stopped (SIGKILL), a backlog of deposits is written, the broker started
  again, and the drain is timed from the first backlog message in the stream to the checkpoint past
  the last. Baselines, same run, same server: every message the relay stored (subject, message id,
  headers, body) published again from a loop to a new stream, (1) one at a time, each
  acknowledgement awaited, and (2) pipelined: up to \`BENCH_RELAY_PIPELINE\` publishes in flight on
  one connection in log order, acknowledgements awaited in order (stored sequence numbers checked to
  follow the log order, so each subject keeps its order). The ratio is the drain rate over the
  stronger of the two.
- **Loading, rebuild, lag**: bench/snapshots.bench.ts and bench/projections.bench.ts (issues 5 and 3),
  run with the sizes above.

## Where the time goes

${
  results.profile
    ? `CPU profile of the service (\`node --cpu-prof\`) during ${fmt((results.settings as { http?: { profileSeconds?: number } }).http?.profileSeconds)} s of the deposit load at ${fmt(byKey(results.figures, 'profile.deposits')?.value)} req/s (a little below the unprofiled rate: the profiler costs a few per cent). Self time: the time spent in a function itself, not in what it calls.

${profileTables(results.profile)}`
    : 'Not profiled in this run (BENCH_PROFILE=0 or the HTTP part skipped).'
}

${analysis}
`;
}
