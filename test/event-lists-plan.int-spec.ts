import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DataSource } from 'typeorm';
import { AccountOpened, MoneyDeposited } from '../src/accounts/account.events.js';
import { EventStore, NO_STREAM, QUERY_DATA_SOURCE } from '../src/event-sourcing/index.js';
import { LedgerClient } from './support/ledger-client.js';
import { type TestApp, startTestApp } from './support/test-app.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

// The cost of a page of GET /accounts/{id}/events and GET /transfers/{id}/events is bounded: on an
// events table of 100,000 other events (analysed), every statement the request sends to `events` is
// planned as an index scan (never a scan of the table) and reads at most limit+1 rows of it.
// The statements are the ones the application really sends (caught from TypeORM's query log),
// explained with their own parameters by PostgreSQL itself (EXPLAIN ANALYZE: the rows it really read).

const NOISE = 100_000;

let database: TestDatabase;
let t: TestApp;
let accountId: string;
let transferId: string;

beforeAll(async () => {
  database = await createTestDatabase();
  // A real transfer and a long account stream, written by the service with its projections running…
  const writer = await startTestApp({}, database);
  try {
    const ledger = new LedgerClient(writer);
    const source = await ledger.openWith(1000);
    const target = await ledger.open();
    transferId = (await ledger.transfer(source.id, target.id, 10)).id;
    await ledger.settled(transferId);
    accountId = randomUUID();
    const events: object[] = [new AccountOpened({ accountId, ownerName: 'Long', currency: 'EUR' })];
    for (let i = 1; i < 3000; i++) events.push(new MoneyDeposited({ accountId, amount: 1, balanceAfter: i }));
    await writer.app.get(EventStore).append(`account-${accountId}`, events, { expectedVersion: NO_STREAM });
  } finally {
    await writer.close();
  }
  // …then 100,000 events of other streams and correlations, read by no projection (they are off).
  t = await startTestApp({ PROJECTIONS_ENABLED: 'false' }, database);
  await t.dataSource.query(
    `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
     SELECT 'account-noise-' || (g / 20), g % 20 + 1, 'accounts.MoneyDeposited', 2, gen_random_uuid(),
            jsonb_build_object('accountId', 'noise', 'amount', 1, 'balanceAfter', 1, 'reference', null),
            jsonb_build_object('correlationId', 'noise-' || (g / 5), 'causationId', 'noise', 'occurredAt', now())
     FROM generate_series(0, $1 - 1) AS g`,
    [NOISE],
  );
  await t.dataSource.query('ANALYZE events');
}, 120_000);

afterAll(async () => {
  await t?.close();
  await database?.drop();
});

/** The statements on `events` that one request sends through the query side, with their parameters. */
async function statementsOf(send: () => PromiseLike<unknown>): Promise<Array<{ sql: string; parameters: unknown[] }>> {
  const dataSource = t.app.get<DataSource>(QUERY_DATA_SOURCE);
  const logger = dataSource.logger;
  const original = logger.logQuery.bind(logger);
  const caught: Array<{ sql: string; parameters: unknown[] }> = [];
  logger.logQuery = (sql, parameters) => {
    if (/\bFROM events\b/.test(sql)) caught.push({ sql, parameters: (parameters as unknown[] | undefined) ?? [] });
  };
  try {
    await send();
  } finally {
    logger.logQuery = original;
  }
  return caught;
}

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

/** Every node of the plan that reads `events`, as PostgreSQL ran it. */
async function eventReads(statement: { sql: string; parameters: unknown[] }): Promise<PlanNode[]> {
  const [row] = await t.dataSource.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${statement.sql}`, statement.parameters);
  const plan = (row['QUERY PLAN'] as Array<{ Plan: PlanNode }>)[0].Plan;
  return nodes(plan).filter((node) => node['Relation Name'] === 'events' || node['Node Type'] === 'Seq Scan');
}

async function expectBoundedReads(path: string, query: Record<string, unknown>, limit: number): Promise<void> {
  const statements = await statementsOf(() => t.http.get(path).query(query).expect(200));
  expect(statements.length).toBeGreaterThan(0);
  for (const statement of statements) {
    const reads = await eventReads(statement);
    expect(reads.length).toBeGreaterThan(0);
    for (const node of reads) {
      const removed = (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0);
      const rowsRead = (node['Actual Rows'] + removed) * node['Actual Loops'];
      expect({ sql: statement.sql, node: node['Node Type'], rowsRead: rowsRead <= limit + 1 }).toEqual({
        sql: statement.sql,
        // an index scan, or a bitmap heap scan fetching the rows its index scan found: never a Seq Scan
        node: expect.stringMatching(/^(Index (Only )?Scan|Bitmap Heap Scan)$/),
        rowsRead: true,
      });
    }
  }
}

describe('a page of a per-stream event list reads through an index, at most limit+1 rows', () => {
  it('GET /accounts/{id}/events: the first page, a middle page, the last page', async () => {
    const path = `/accounts/${accountId}/events`;
    await expectBoundedReads(path, { limit: 100 }, 100);
    const middle = Buffer.from(JSON.stringify({ afterVersion: 1500 })).toString('base64url');
    await expectBoundedReads(path, { limit: 100, cursor: middle }, 100);
    const last = Buffer.from(JSON.stringify({ afterVersion: 2990 })).toString('base64url');
    await expectBoundedReads(path, { limit: 1000, cursor: last }, 1000);
  });

  it('GET /transfers/{id}/events: pages of 2 through the correlation index', async () => {
    const path = `/transfers/${transferId}/events`;
    await expectBoundedReads(path, { limit: 2 }, 2);
    const first = (await t.http.get(path).query({ limit: 2 }).expect(200)).body;
    await expectBoundedReads(path, { limit: 2, cursor: first.nextCursor }, 2);
  });
});
