import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DataSource } from 'typeorm';
import { QUERY_DATA_SOURCE } from '../src/event-sourcing/index.js';
import { LedgerClient } from './support/ledger-client.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// Found in review (unbounded page of GET /transfers/{id}/events): the page statement walks
// events_correlation_idx for the transfer's correlation id and discards, by filter, every event of
// that correlation that is not the transfer's. The correlation id is the caller's X-Correlation-Id:
// a client that sends one id with all its requests (or anyone who copies a transfer's id from the
// feed) puts N events in that range, and EVERY page of the chain then reads all N of them (the
// README claims at most limit+1 rows). Here 20,000 deposits share the transfer's correlation id.

const NOISE = 20_000;
const CORRELATION = 'batch-job-2026-12-05';

let t: TestApp;
let transferId: string;

beforeAll(async () => {
  t = await startTestApp();
  const ledger = new LedgerClient(t);
  const source = await ledger.openWith(1000);
  const target = await ledger.open();
  const answer = await t.http
    .post('/transfers')
    .set('X-Correlation-Id', CORRELATION)
    .send({ fromAccountId: source.id, toAccountId: target.id, amount: 10 })
    .expect(202);
  transferId = answer.body.id;
  await ledger.settled(transferId);
  // The same client keeps its correlation id for its next requests: one over HTTP…
  await t.http.post(`/accounts/${source.id}/deposits`).set('X-Correlation-Id', CORRELATION).send({ amount: 1 }).expect(200);
  // …and many more, written straight to the table for speed (the same rows the service writes).
  await t.dataSource.query(
    `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
     SELECT 'account-noise-' || (g / 20), g % 20 + 1, 'accounts.MoneyDeposited', 2, gen_random_uuid(),
            jsonb_build_object('accountId', 'noise', 'amount', 1, 'balanceAfter', 1, 'reference', null),
            jsonb_build_object('correlationId', $2::text, 'causationId', 'noise', 'occurredAt', now())
     FROM generate_series(0, $1 - 1) AS g`,
    [NOISE, CORRELATION],
  );
  await t.dataSource.query('ANALYZE events');
}, 180_000);

afterAll(async () => {
  await t?.close();
});

describe('a page of GET /transfers/{id}/events is bounded', () => {
  it('reads at most limit+1 rows of events per page, on every page, even when the correlation id is shared by many other events', async () => {
    const dataSource = t.app.get<DataSource>(QUERY_DATA_SOURCE);
    const caught: Array<{ sql: string; parameters: unknown[] }> = [];
    const original = dataSource.logger.logQuery.bind(dataSource.logger);
    dataSource.logger.logQuery = (sql, parameters) => {
      if (sql.includes("metadata->>'correlationId'")) caught.push({ sql, parameters: (parameters as unknown[] | undefined) ?? [] });
    };
    let cursor: string | null | undefined;
    let pages = 0;
    try {
      do {
        const query: Record<string, unknown> = { limit: 2 };
        if (cursor) query.cursor = cursor;
        const page = (await t.http.get(`/transfers/${transferId}/events`).query(query).expect(200)).body;
        cursor = page.nextCursor;
        pages++;
      } while (cursor && pages < 20);
    } finally {
      dataSource.logger.logQuery = original;
    }
    const walk = (node: any): any[] => [node, ...(node.Plans ?? []).flatMap(walk)];
    const rowsReadPerPage: number[] = [];
    for (const statement of caught) {
      const [row] = await t.dataSource.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${statement.sql}`, statement.parameters);
      const reads = walk(row['QUERY PLAN'][0].Plan).filter((node) => node['Relation Name'] === 'events');
      rowsReadPerPage.push(
        reads.reduce(
          (sum, node) =>
            sum +
            (node['Actual Rows'] + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0)) *
              node['Actual Loops'],
          0,
        ),
      );
    }
    expect(rowsReadPerPage.length).toBeGreaterThan(1);
    expect(Math.max(...rowsReadPerPage)).toBeLessThanOrEqual(3);
  });
});
