#!/usr/bin/env bash
# Statements per transfer, everything included (the request, the transfer process, the projections),
# counted by pg_stat_statements while TRANSFERS (default 1,000) transfers between 100 accounts are
# requested by 8 clients and settle (bench/analysis.md, issue 15), with each statement's execution and
# planning time, and the CPU PostgreSQL and the service used per transfer over the same window.
# Usage: bench/statements-per-transfer.sh [built checkout, default: this one]   (run `npx tsc` there first)
# Needs the Debian PostgreSQL server (its pg_stat_statements is preloaded in a throwaway cluster).
source "$(dirname "$0")/statements-cluster.sh"
cd "$DIST" && TRANSFERS=${TRANSFERS:-1000} node --input-type=module -e "
import pg from 'pg';
const { issueToken } = await import('$DIST/dist/src/auth/token-issuer.js');
const { loadConfig } = await import('$DIST/dist/src/config/app-config.js');
const token = issueToken(loadConfig({}), { subject: 'bench', scopes: ['ledger:commands', 'ledger:queries'], expiresIn: '1h' });
const headers = { 'content-type': 'application/json', authorization: 'Bearer ' + token };
const base = 'http://127.0.0.1:$APP_PORT';
const post = async (path, body) => { const r = await fetch(base + path, { method: 'POST', headers, body: JSON.stringify(body) }); if (r.status >= 300) throw new Error(r.status + ' ' + await r.text()); return r.json(); };
const ids = [];
for (let i = 0; i < 100; i++) { const { id } = await post('/accounts', { ownerName: 'A' + i, currency: 'EUR' }); ids.push(id); await post('/accounts/' + id + '/deposits', { amount: 10000000 }); }
const client = new pg.Client('$URL');
await client.connect();
await client.query('CREATE EXTENSION pg_stat_statements');
const completed = async () => Number((await client.query(\"SELECT count(*) FROM events WHERE type = 'transfers.TransferCompleted'\")).rows[0].count);
const transfer = async (n) => { let next = 0; await Promise.all(Array.from({ length: 8 }, async () => { while (next < n) { next++; const a = Math.floor(Math.random() * 100); let b = Math.floor(Math.random() * 99); if (b >= a) b++; await post('/transfers', { fromAccountId: ids[a], toAccountId: ids[b], amount: 1 }); } })); };
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
await transfer(100); while ((await completed()) < 100) await pause(200); await pause(1000);
await client.query('SELECT pg_stat_statements_reset()');
const { cpuSeconds, clusterCpuSeconds } = await import('$CPU_JS');
const cpuBefore = [clusterCpuSeconds($PG_PID), cpuSeconds($SERVICE)];
const n = Number(process.env.TRANSFERS);
await transfer(n);
while ((await completed()) < 100 + n) await pause(200);
await pause(1500);
const cpuAfter = [clusterCpuSeconds($PG_PID), cpuSeconds($SERVICE)];
const { rows } = await client.query(
  \"SELECT calls, round(total_exec_time) AS ms, round(total_plan_time) AS plan_ms, left(regexp_replace(query, '\\\\s+', ' ', 'g'), 110) AS query FROM pg_stat_statements WHERE toplevel AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%TransferCompleted%' ORDER BY calls DESC\",
);
const total = rows.reduce((sum, row) => sum + Number(row.calls), 0);
console.log('statements sent per transfer: ' + (total / n).toFixed(2) + ' (' + total + ' for ' + n + ' transfers)');
const perTransfer = (index) => (((cpuAfter[index] - cpuBefore[index]) * 1000) / n).toFixed(2);
console.log('CPU per transfer: PostgreSQL ' + perTransfer(0) + ' ms (every process of the cluster), service ' + perTransfer(1) + ' ms');
console.log('  calls    per   execution  planning  statement');
for (const row of rows) console.log(String(row.calls).padStart(7), (row.calls / n).toFixed(2).padStart(6), String(row.ms).padStart(6) + 'ms', String(row.plan_ms).padStart(5) + 'ms', row.query);
await client.end();
"
