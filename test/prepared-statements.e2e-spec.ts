import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import type { DataSource } from 'typeorm';
import { PROJECTOR_DATA_SOURCE } from '../src/event-sourcing/index.js';
import { transferStreamId } from '../src/transfers/transfer.js';
import type { LedgerClient } from './support/ledger-client.js';
import { type AppWithConnection, startAppWithConnection } from './support/app-with-connection.js';
import { eventually, rows, waitUntilApplied } from './support/projection-fixtures.js';
import { type SentStatement, watchStatements } from './support/statement-counter.js';
import type { TestApp } from './support/test-app.js';

// Every statement sent once per event, per batch or per step of a transfer goes prepared (named): a
// statement sent unnamed is parsed and planned again on every call, and measured with
// pg_stat_statements, planning the read models' writes took longer than running them
// (docs/BENCHMARKS.md). Watched: the command side (requests, the transfer process) and the projector
// side (the runners); the test itself waits through a connection of its own.

/**
 * Allowed unnamed, each for its reason:
 * - transaction control, and the shared read-model transactions' lock timeout: nothing to plan;
 * - the one-message ends of a batch or a unit of work (a fence check or checkpoint advance, then
 *   COMMIT, in one simple-protocol message: a round trip fewer, with the values inlined);
 * - statements sent on timers, not per event: lease renewals, heartbeats, checkpoint reloads, the
 *   transfer backlog count;
 * - the process managers' checkpoint move with completed events ahead, which answers RETURNING *
 *   (a prepared statement's result columns must not change under it).
 */
const ALLOWED = [
  /^(START TRANSACTION|BEGIN|COMMIT|ROLLBACK)$/,
  /^(START TRANSACTION; )?SET LOCAL lock_timeout = '\d+ms'$/,
  /^SELECT ledger_fence\('[^']*', '[^']*', \d+::bigint\); COMMIT$/,
  /^(SELECT \* FROM ledger_advance_checkpoint\([^;]*\); )+COMMIT$/,
  /projection_instances|SET lease_expires_at = clock_timestamp|^SELECT \* FROM projection_checkpoints WHERE name = \$1$|count\(\*\) FILTER/,
  /completed_ahead = \$9::bigint\[\]/,
];

let t: TestApp;
let ledger: LedgerClient;
let own: pg.Client;
let app: AppWithConnection | undefined;
const sent: SentStatement[] = [];
let recording = false;

beforeAll(async () => {
  app = await startAppWithConnection();
  ({ t, ledger, own } = app);
  const dataSources = new Set<DataSource>([t.dataSource, t.app.get(PROJECTOR_DATA_SOURCE)]);
  for (const dataSource of dataSources) {
    watchStatements(dataSource, (statement) => {
      if (recording) sent.push(statement);
    });
  }
});
afterAll(async () => {
  await app?.close();
});

describe('the hot path on prepared statements', () => {
  it('sends no per-event statement unnamed while deposits are applied and transfers settle', async () => {
    const accounts = await Promise.all([ledger.openWith(1000), ledger.openWith(1000), ledger.open(), ledger.open()]);
    recording = true;
    const transfers = await Promise.all(
      Array.from({ length: 8 }, (_, n) => ledger.transfer(accounts[n % 2].id, accounts[2 + (n % 2)].id, 10 + n)),
    );
    await Promise.all(accounts.map((account) => ledger.deposit(account.id, 5)));
    await eventually('every transfer settled', async () => {
      const [{ settled }] = await rows<{ settled: number }>(
        own,
        "SELECT count(*)::int AS settled FROM events WHERE type IN ('transfers.TransferCompleted', 'transfers.TransferFailed') AND stream_id = ANY($1)",
        [transfers.map((transfer) => transferStreamId(transfer.id))],
      );
      return settled === transfers.length ? true : undefined;
    });
    const [{ head }] = await rows<{ head: string }>(own, 'SELECT max(position)::text AS head FROM events');
    const projections = await rows<{ projection: string }>(own, 'SELECT DISTINCT projection FROM projection_checkpoints');
    for (const { projection } of projections) await waitUntilApplied(own, projection, Number(head));
    recording = false;
    expect((await ledger.account(accounts[2].id)).balance).toBe(10 + 12 + 14 + 16 + 5);

    const names = new Set(sent.map((statement) => statement.name).filter(Boolean));
    // The path was seen: the transfer process's reads, the read models' writes, the runners' reads and passes.
    expect([...names]).toEqual(
      expect.arrayContaining([
        'ledger_checkpoints_advance_past_v1',
        'ledger_stream_range_v1',
        'ledger_transfers_insert_v1',
        'ledger_transfers_finish_v1',
        'ledger_account_summaries_change_v1',
        'ledger_account_transactions_insert_v1',
        'ledger_read_batch_v4',
      ]),
    );
    const unnamed = sent
      .filter((statement) => !statement.name)
      .map((statement) => statement.text.replace(/\s+/g, ' ').trim())
      .filter((text) => !ALLOWED.some((allowed) => allowed.test(text)));
    expect([...new Set(unnamed)]).toEqual([]);
  });
});
