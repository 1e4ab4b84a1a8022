// Hot account benchmark: every request a deposit to the SAME account, from BENCH_HOT_CONNECTIONS
// concurrent connections (a payroll run, a popular merchant), against this build and, with
// BENCH_HTTP_BASELINE_REF / BENCH_HTTP_BASELINE_DIR, another commit's build in the same run.
//   npm run bench:hot-account      (BENCH_HOT_CONNECTIONS 32, BENCH_HOT_SECONDS 24, BENCH_HOT_ROUNDS 4)
// Each build is its compiled dist/src/main.js in a process of its own, on a fresh database of its
// own, with the same environment; measured rounds alternate between the builds. Reported per build:
// deposits acknowledged (200) per second, how many were refused 409 CONCURRENCY_CONFLICT (lost
// every retry), anything else, and the latency of the answers. Reported, never asserted.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import pg from 'pg';
import { type BaselineBuild, prepareBaseline } from './baseline-build.js';
import { type BenchServer, describeMachine, isMain, openBenchServer, percentile, report, round } from './bench-database.js';
import { AUTH, type Service, buildSources, httpSettings, seedAccounts, startService, waitForCheckpoints } from './http.bench.js';

export interface HotAccountSettings {
  readonly connections: number;
  readonly seconds: number;
  readonly rounds: number;
  readonly warmupSeconds: number;
}

export function hotAccountSettings(env: NodeJS.ProcessEnv = process.env): HotAccountSettings {
  return {
    connections: Number(env.BENCH_HOT_CONNECTIONS ?? 32),
    seconds: Number(env.BENCH_HOT_SECONDS ?? 24),
    rounds: Number(env.BENCH_HOT_ROUNDS ?? 4),
    warmupSeconds: Number(env.BENCH_HOT_WARMUP_SECONDS ?? 2),
  };
}

interface Tally {
  acknowledged: number;
  refused: number;
  other: number;
  seconds: number;
  readonly latencies: number[];
}

interface HotBuild {
  readonly name: 'current' | 'baseline';
  readonly ref: string;
  readonly service: Service;
  readonly databaseUrl: string;
  readonly account: string;
  readonly tally: Tally;
}

/** Until the build's database has run no statement of the service for a while (its requests are done). */
async function drained(build: HotBuild): Promise<void> {
  const client = new pg.Client({ connectionString: build.databaseUrl });
  await client.connect();
  try {
    let quiet = 0;
    const deadline = Date.now() + 60_000;
    while (quiet < 5 && Date.now() < deadline) {
      const { rows } = await client.query<{ busy: number }>(
        `SELECT count(*)::int AS busy FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND state = 'active' AND query NOT ILIKE '%projection%' AND query NOT ILIKE 'LISTEN%'`,
      );
      quiet = rows[0].busy === 0 ? quiet + 1 : 0;
      await sleep(100);
    }
  } finally {
    await client.end();
  }
}

/** One round of deposits to the build's one account; adds what was answered to its tally. */
async function depositRound(build: HotBuild, settings: HotAccountSettings, seconds: number, tally?: Tally): Promise<void> {
  const instance = autocannon({
    url: build.service.url,
    connections: settings.connections,
    duration: seconds,
    timeout: 30,
    requests: [
      {
        method: 'POST',
        path: `/accounts/${build.account}/deposits`,
        headers: { ...AUTH, 'content-type': 'application/json' },
        body: '{"amount":1}',
      },
    ],
  });
  instance.on('response', (_client, status, _bytes, responseTime) => {
    if (!tally) return;
    tally.latencies.push(responseTime);
    if (status === 200) tally.acknowledged++;
    else if (status === 409) tally.refused++;
    else tally.other++;
  });
  const result = await instance;
  // A round ends with requests still in the service (queued, or retrying a lost race): let them
  // finish before the next round starts, else they would weigh on the other build's round.
  await drained(build);
  if (tally) {
    tally.seconds += result.duration;
    tally.other += result.errors + result.timeouts;
  }
}

export async function runHotAccountBench(server: BenchServer, settings = hotAccountSettings()): Promise<void> {
  const baseline: BaselineBuild | undefined = prepareBaseline(join(import.meta.dirname, '..', '..'));
  const sources = buildSources(baseline);
  const builds: HotBuild[] = [];
  const databases: Array<{ close(): Promise<void> }> = [];
  try {
    for (const source of sources) {
      const database = await server.database(`ledger_bench_hot_${source.name}`);
      databases.push(database);
      const service = await startService(database.url, httpSettings(), [...source.nodeOptions], source.script);
      const [account] = await seedAccounts(database.url, 1);
      builds.push({
        ...source,
        service,
        databaseUrl: database.url,
        account,
        tally: { acknowledged: 0, refused: 0, other: 0, seconds: 0, latencies: [] },
      });
    }
    for (const build of builds) await depositRound(build, settings, settings.warmupSeconds);
    console.error(
      `hot account: ${settings.connections} connections depositing to one account, ${builds.map((b) => `${b.name} (${b.ref})`).join(' / ')}, ${settings.rounds} alternating rounds of ${settings.seconds / settings.rounds} s…`,
    );
    for (let index = 0; index < settings.rounds; index++) {
      for (const build of index % 2 === 0 ? builds : [...builds].reverse()) {
        await waitForCheckpoints(build.databaseUrl);
        await depositRound(build, settings, settings.seconds / settings.rounds, build.tally);
      }
    }
    const rate = (build: HotBuild) => build.tally.acknowledged / build.tally.seconds;
    const other = builds.find((build) => build.name === 'baseline');
    for (const build of builds) {
      const { tally } = build;
      const latencies = [...tally.latencies].sort((a, b) => a - b);
      const answered = tally.acknowledged + tally.refused + tally.other;
      report(
        `deposits to one hot account, ${settings.connections} connections: ${build.name} build (${build.ref})`,
        round(rate(build)),
        'acknowledged/s',
        {
          group: 'hot-account',
          key: `hot-account.${build.name}`,
          ref: build.ref,
          connections: settings.connections,
          acknowledged: tally.acknowledged,
          refused409: tally.refused,
          refusedShare: round(tally.refused / Math.max(1, answered), 3),
          other: tally.other,
          p50Ms: round(percentile(latencies, 50), 1),
          p99Ms: round(percentile(latencies, 99), 1),
          ...(build.name === 'current' && other ? { ratioToBaseline: round(rate(build) / Math.max(rate(other), 1e-9), 2) } : {}),
        },
      );
    }
  } finally {
    for (const build of builds) await build.service.stop();
    for (const database of databases) await database.close();
    baseline?.cleanup();
  }
}

if (isMain(import.meta.url)) {
  const server = await openBenchServer();
  try {
    console.error(JSON.stringify(await describeMachine(server.url)));
    await runHotAccountBench(server);
  } catch (error) {
    console.error(error);
    process.exitCode = 1;
  } finally {
    await server.close();
  }
}
