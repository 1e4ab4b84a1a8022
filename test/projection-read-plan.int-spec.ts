import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { READ_BATCH_SQL } from '../src/event-sourcing/commit-order-log.js';
import { type TestApp, startTestApp } from './support/test-app.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

// Every projection runner sends READ_BATCH_SQL each time it is woken, so its cost must not grow with
// the log. On an events table of 100,000 events, PostgreSQL itself (EXPLAIN ANALYZE of the prepared
// statement as the runners send it, with the custom plan and with the generic plan a prepared statement
// switches to after five runs, before and after ANALYZE) must read `events` through an index only and
// touch at most the batch's rows plus the one row that says whether later events are held back: for a
// runner at the head, for one behind, and while a transaction in flight holds events back.
// It failed before the read's held-back probe was rewritten: the probe was planned as a Seq Scan that
// read all 100,000 rows on every read.

const NOISE = 100_000;

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plans?: PlanNode[];
}

const nodes = (plan: PlanNode): PlanNode[] => [plan, ...(plan.Plans ?? []).flatMap(nodes)];

let database: TestDatabase;
let app: TestApp;
let client: pg.Client;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp({ PROJECTIONS_ENABLED: 'false' }, database); // the schema, by the migrations
  await app.dataSource.query(
    `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
     SELECT 'account-noise-' || (g / 20), g % 20 + 1, 'accounts.MoneyDeposited', 2, gen_random_uuid(),
            jsonb_build_object('accountId', 'noise', 'amount', 1, 'balanceAfter', 1, 'reference', null),
            jsonb_build_object('correlationId', 'noise', 'causationId', 'noise', 'occurredAt', now())
     FROM generate_series(0, $1 - 1) AS g`,
    [NOISE],
  );
  client = new pg.Client({ connectionString: database.url });
  await client.connect();
  await client.query(`PREPARE read_batch(xid8, bigint, int) AS ${READ_BATCH_SQL.text}`);
}, 120_000);

afterAll(async () => {
  await client?.end();
  await app?.close();
  await database?.drop();
});

/** The checkpoint `behind` events before the newest committed one. */
async function checkpointBehind(behind: number): Promise<[string, string]> {
  const { rows } = await client.query<{ transaction_id: string; position: string }>(
    'SELECT transaction_id::text, position::text FROM events ORDER BY events.transaction_id DESC, events.position DESC OFFSET $1 LIMIT 1',
    [behind],
  );
  return [rows[0].transaction_id, rows[0].position];
}

/** The nodes of the plan PostgreSQL ran that read `events`, and the read's answer. */
async function explainRead(mode: string, checkpoint: [string, string], limit: number) {
  // EXECUTE takes no bind parameters: the values are inlined (numbers read from the table above).
  const [transactionId, position] = checkpoint.map((value) => String(BigInt(value)));
  const execute = `EXECUTE read_batch('${transactionId}', ${position}, ${Math.trunc(limit)})`;
  await client.query(`SET plan_cache_mode = ${mode}`);
  const explained = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${execute}`);
  const plan = (explained.rows[0]['QUERY PLAN'] as Array<{ Plan: PlanNode }>)[0].Plan;
  const answer = await client.query<{ held_back: boolean; position: string | null }>(execute);
  await client.query('RESET plan_cache_mode');
  return {
    reads: nodes(plan).filter((node) => node['Relation Name'] === 'events' || node['Node Type'] === 'Seq Scan'),
    answer: answer.rows,
  };
}

async function expectBounded(checkpoint: [string, string], limit: number, expected: { events: number; heldBack: boolean }) {
  for (const mode of ['force_custom_plan', 'force_generic_plan']) {
    const { reads, answer } = await explainRead(mode, checkpoint, limit);
    expect({ mode, events: answer[0].position == null ? 0 : answer.length, heldBack: answer[0].held_back }).toEqual({ mode, ...expected });
    expect(reads.length).toBeGreaterThan(0);
    for (const node of reads) {
      const removed = (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0);
      const rowsRead = (node['Actual Rows'] + removed) * node['Actual Loops'];
      expect({ mode, node: node['Node Type'], withinBatch: rowsRead <= limit + 1 }).toEqual({
        mode,
        node: expect.stringMatching(/^Index (Only )?Scan( Backward)?$/),
        withinBatch: true,
      });
    }
  }
}

describe('a projection runner’s read of the log reads only its batch, however long the log', () => {
  it('before ANALYZE and after it: a runner at the head and one 250 events behind', async () => {
    for (const analysed of [false, true]) {
      if (analysed) await client.query('ANALYZE events');
      await expectBounded(await checkpointBehind(0), 100, { events: 0, heldBack: false });
      await expectBounded(await checkpointBehind(250), 100, { events: 100, heldBack: false });
    }
  });

  it('while a transaction in flight holds back events committed after it', async () => {
    const holder = new pg.Client({ connectionString: database.url });
    const later = new pg.Client({ connectionString: database.url });
    await Promise.all([holder.connect(), later.connect()]);
    try {
      const head = await checkpointBehind(0);
      await holder.query('BEGIN');
      await holder.query('SELECT pg_current_xact_id()'); // an xid: the horizon stays at it until it ends
      await later.query(
        `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
         VALUES ('account-later', 1, 'accounts.MoneyDeposited', 2, gen_random_uuid(),
                 '{"accountId":"later","amount":1,"balanceAfter":1,"reference":null}', '{"correlationId":"later"}')`,
      );
      await expectBounded(head, 100, { events: 0, heldBack: true });
      await holder.query('ROLLBACK');
      await expectBounded(head, 100, { events: 1, heldBack: false });
    } finally {
      await Promise.all([holder.end(), later.end()]);
    }
  });
});
