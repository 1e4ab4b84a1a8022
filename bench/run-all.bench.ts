// The benchmark suite of issue 7: `npm run bench`. Starts its own PostgreSQL (or uses
// BENCH_DATABASE_URL), runs every part on a fresh database of it, prints one JSON line per figure
// and a markdown table, writes bench/results/<YYYY-MM-DD>.json and rewrites docs/BENCHMARKS.md.
// Never fails on a figure: the targets are reported, not asserted.
//   BENCH_ONLY=append,http,snapshots,projections,transfers,relay   run some parts only (the document is still written)
//   node dist/bench/run-all.bench.js --render <bench/results/file.json>   rewrite docs/BENCHMARKS.md from a
//     stored run (e.g. after editing bench/analysis.md), measuring nothing
import 'reflect-metadata';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { type AppendSettings, appendSettings, runAppendBench } from './append.bench.js';
import { describeMachine, openBenchServer, reported, round } from './bench-database.js';
import { type HttpSettings, httpSettings, runHttpBench } from './http.bench.js';
import { type BenchResults, evaluateTargets, figureTables, renderBenchmarksDoc } from './report.js';
import { type ProjectionSettings, projectionSettings, runProjectionsBench } from './projections.bench.js';
import { type RelaySettings, relaySettings, runRelayBench } from './relay.bench.js';
import { type SnapshotSettings, runSnapshotsBench, snapshotSettings } from './snapshots.bench.js';
import { type TransfersSettings, runTransfersBench, transfersSettings } from './transfers.bench.js';

const ROOT = join(import.meta.dirname, '..', '..');
const PARTS = ['append', 'http', 'snapshots', 'projections', 'transfers', 'relay'] as const;

async function main(): Promise<void> {
  if (process.argv[2] === '--render') {
    const stored = JSON.parse(readFileSync(process.argv[3], 'utf8')) as BenchResults;
    writeFileSync(join(ROOT, 'docs', 'BENCHMARKS.md'), renderBenchmarksDoc(stored, ROOT));
    console.log(figureTables(stored));
    return;
  }
  const only = process.env.BENCH_ONLY?.split(',').map((part) => part.trim());
  const runs = (part: (typeof PARTS)[number]) => !only || only.includes(part);
  const settings: {
    append: AppendSettings;
    http: HttpSettings;
    snapshots: SnapshotSettings;
    projections: ProjectionSettings;
    transfers: TransfersSettings;
    relay: RelaySettings;
  } = {
    append: appendSettings(),
    http: httpSettings(),
    snapshots: snapshotSettings(),
    // Smaller than `npm run bench:projections` (1,000,000) to keep the whole suite to a few minutes.
    projections: projectionSettings({
      ...process.env,
      BENCH_EVENTS: process.env.BENCH_PROJECTION_EVENTS ?? '200000',
      BENCH_LAG_SECONDS: process.env.BENCH_LAG_SECONDS ?? '15',
    }),
    transfers: transfersSettings(),
    relay: relaySettings(),
  };
  const startedAt = new Date();
  const started = performance.now();
  const server = await openBenchServer();
  let results: BenchResults;
  try {
    const machine = await describeMachine(server.url);
    console.error(`machine: ${JSON.stringify(machine)}`);
    if (runs('append')) await runAppendBench(server, settings.append);
    const profile = runs('http') ? (await runHttpBench(server, settings.http)).profile : undefined;
    if (runs('snapshots')) await runSnapshotsBench(server, settings.snapshots);
    if (runs('projections')) await runProjectionsBench(server, settings.projections);
    if (runs('transfers')) await runTransfersBench(server, settings.transfers);
    if (runs('relay')) await runRelayBench(server, settings.relay);
    results = {
      date: startedAt.toISOString().slice(0, 10),
      startedAt: startedAt.toISOString(),
      durationSeconds: round((performance.now() - started) / 1000),
      parts: PARTS.filter(runs),
      machine: { ...machine, loadAverage1mAtEnd: round(loadavg()[0], 2) },
      settings,
      figures: reported,
      targets: evaluateTargets(reported),
      ...(profile ? { profile } : {}),
    };
  } finally {
    await server.close();
  }
  const resultsDir = join(ROOT, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const resultsFile = join(resultsDir, `${results.date}.json`);
  writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(ROOT, 'docs', 'BENCHMARKS.md'), renderBenchmarksDoc(results, ROOT));
  console.log(`\n${figureTables(results)}`);
  console.error(`\nwrote bench/results/${results.date}.json and docs/BENCHMARKS.md (${results.durationSeconds} s)`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
