import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { READ_BATCH_SQL } from '../src/event-sourcing/commit-order-log.js';
import { untilNothingHeldBack } from './support/projection-fixtures.js';
import { type TestApp, startTestApp } from './support/test-app.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

// Every projection runner sends READ_BATCH_SQL each time it is woken, so its cost must not grow with
// the log. On an events table of 100,000 events, PostgreSQL itself (EXPLAIN ANALYZE of the prepared
// statement as the runners send it, with the custom plan and with the generic plan a prepared statement
// switches to after five runs, before and after ANALYZE) must read `events` through an index only and
// return at most the batch's rows plus the one row that says whether later events are held back, and
// touch at most MAX_BLOCKS buffers: for a runner at the head, for one behind, and while a transaction
// in flight holds events back. A bulk append in flight at the top costs more (its own case below).
// It failed before the read's held-back probe was rewritten: the probe was planned as a Seq Scan that
// read all 100,000 rows on every read.

const NOISE = 100_000;
/** Buffers one read may touch: index pages and the batch's heap pages (7 to 12 measured). */
const MAX_BLOCKS = 30;

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  'Shared Hit Blocks': number;
  'Shared Read Blocks': number;
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
  const explained = await client.query(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${execute}`);
  const plan = (explained.rows[0]['QUERY PLAN'] as Array<{ Plan: PlanNode }>)[0].Plan;
  const answer = await client.query<{ held_back: boolean; position: string | null }>(execute);
  await client.query('RESET plan_cache_mode');
  return {
    blocks: plan['Shared Hit Blocks'] + plan['Shared Read Blocks'],
    reads: nodes(plan).filter((node) => node['Relation Name'] === 'events' || node['Node Type'] === 'Seq Scan'),
    answer: answer.rows,
  };
}

/**
 * What one read must cost: index scans only, at most the batch plus one row of `events` returned by
 * each, and at most MAX_BLOCKS buffers in all (the old probe's scan touched every page: about 1,400 at
 * 100,000 events) unless `blocks` is false (see the bulk case below).
 */
async function expectBounded(
  checkpoint: [string, string],
  limit: number,
  expected: { events: number; heldBack: boolean },
  blocksBounded = true,
) {
  for (const mode of ['force_custom_plan', 'force_generic_plan']) {
    const { blocks, reads, answer } = await explainRead(mode, checkpoint, limit);
    expect({ mode, events: answer[0].position == null ? 0 : answer.length, heldBack: answer[0].held_back }).toEqual({ mode, ...expected });
    expect(reads.length).toBeGreaterThan(0);
    if (blocksBounded) expect({ mode, blocks, withinBound: blocks <= MAX_BLOCKS }).toEqual({ mode, blocks, withinBound: true });
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
      await untilNothingHeldBack(client);
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
      await untilNothingHeldBack(client);
      await expectBounded(head, 100, { events: 1, heldBack: false });
    } finally {
      await Promise.all([holder.end(), later.end()]);
    }
  });

  it('while a bulk append of 20,000 events is in flight at the top of the log, nothing committed after it', async () => {
    // The backward scan must step over every index entry it cannot see yet (PostgreSQL cannot mark
    // them dead): this read's cost grows with the appends in flight, never with the log. Accepted,
    // and pinned here: still index scans only, the right answer, and no scan of the table.
    const bulk = new pg.Client({ connectionString: database.url });
    await bulk.connect();
    try {
      await untilNothingHeldBack(client);
      const head = await checkpointBehind(0);
      await bulk.query('BEGIN');
      await bulk.query(
        `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
         SELECT 'account-bulk', g, 'accounts.MoneyDeposited', 2, gen_random_uuid(),
                '{"accountId":"bulk","amount":1,"balanceAfter":1,"reference":null}', '{"correlationId":"bulk"}'
         FROM generate_series(1, 20000) AS g`,
      );
      await expectBounded(head, 100, { events: 0, heldBack: false }, false);
      await bulk.query('ROLLBACK');
    } finally {
      await bulk.end();
    }
  });
});
