#!/usr/bin/env bash
# Statements per deposit at 1 connection, counted by pg_stat_statements (docs/BENCHMARKS.md, issue 14),
# with their execution and planning times, and the CPU PostgreSQL and the service used per deposit.
# Usage: bench/statements-per-deposit.sh [built checkout, default: this one]   (run `npx tsc` there first)
# Needs the Debian PostgreSQL server (its pg_stat_statements is preloaded in a throwaway cluster).
source "$(dirname "$0")/statements-cluster.sh"
cd "$DIST" && DEPOSITS=${DEPOSITS:-500} node --input-type=module -e "
import pg from 'pg';
const { issueToken } = await import('$DIST/dist/src/auth/token-issuer.js');
const { loadConfig } = await import('$DIST/dist/src/config/app-config.js');
const token = issueToken(loadConfig({}), { subject: 'bench', scopes: ['ledger:commands'], expiresIn: '1h' });
const headers = { 'content-type': 'application/json', authorization: 'Bearer ' + token };
const base = 'http://127.0.0.1:$APP_PORT';
const opened = await fetch(base + '/accounts', { method: 'POST', headers, body: JSON.stringify({ ownerName: 'A', currency: 'EUR' }) });
const { id } = await opened.json();
const deposit = async (n) => {
  for (let i = 0; i < n; i++) {
    const response = await fetch(base + '/accounts/' + id + '/deposits', { method: 'POST', headers, body: '{\"amount\":1}' });
    if (response.status !== 200) throw new Error(response.status + ' ' + (await response.text()));
  }
};
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const client = new pg.Client('$URL');
await client.connect();
await client.query('CREATE EXTENSION pg_stat_statements');
await deposit(100); // warm: the aggregate cache, prepared statements, every segment leased
await pause(1000);
await client.query('SELECT pg_stat_statements_reset()');
const { cpuSeconds, clusterCpuSeconds } = await import('$CPU_JS');
const cpuBefore = [clusterCpuSeconds($PG_PID), cpuSeconds($SERVICE)];
const n = Number(process.env.DEPOSITS);
await deposit(n);
await pause(1500); // the projections' batches and the idle ticks of the last deposits
const cpuAfter = [clusterCpuSeconds($PG_PID), cpuSeconds($SERVICE)];
// toplevel: statements sent by a client (a trigger's own statements are not round trips).
const { rows } = await client.query(
  \"SELECT calls, round(total_exec_time::numeric, 1) AS ms, round(total_plan_time::numeric, 1) AS plan_ms, left(regexp_replace(query, '\\\\s+', ' ', 'g'), 100) AS query FROM pg_stat_statements WHERE toplevel AND query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC\",
);
const total = rows.reduce((sum, row) => sum + Number(row.calls), 0);
console.log('statements sent per deposit: ' + (total / n).toFixed(2) + ' (' + total + ' for ' + n + ' deposits)');
const perDeposit = (index) => (((cpuAfter[index] - cpuBefore[index]) * 1000) / n).toFixed(2);
console.log('CPU per deposit: PostgreSQL ' + perDeposit(0) + ' ms (every process of the cluster), service ' + perDeposit(1) + ' ms');
console.log('  calls    per  execution planning  statement');
for (const row of rows) console.log(String(row.calls).padStart(7), (row.calls / n).toFixed(2).padStart(6), String(row.ms).padStart(7) + 'ms', String(row.plan_ms).padStart(6) + 'ms', row.query);
await client.end();
"
