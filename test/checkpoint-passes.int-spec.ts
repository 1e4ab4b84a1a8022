// Checkpoint moves past others' events, gathered (issue 14): the segments woken together by the idle
// tick ask in one turn of the event loop, and their moves go in one statement, each row still fenced
// on its own lease, token and checkpoint.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { EntityManager } from 'typeorm';
import { NO_STREAM, segmentOfKey } from '../src/event-sourcing/index.js';
import { CheckpointPasses } from '../src/event-sourcing/checkpoint-passes.js';
import type { Checkpoint } from '../src/event-sourcing/recorded-event.js';
import { type EventStoreModule, startEventStoreModule } from './support/event-store-module.js';
import { Ticked, createCountingTables, defineCountingProjection, eventually, headOfLog, rows } from './support/projection-fixtures.js';

const SEGMENTS = 4;
const Ticks = defineCountingProjection('pass-ticks', 'async', [Ticked]);

interface SegmentRow {
  name: string;
  segment: number;
  lease_owner: string;
  lease_token: string;
  transaction_id: string;
  position: string;
}

function segmentRows(module: EventStoreModule): Promise<SegmentRow[]> {
  return rows<SegmentRow>(
    module.dataSource,
    `SELECT name, segment, lease_owner, lease_token::text, transaction_id::text, position
       FROM projection_checkpoints WHERE projection = $1 ORDER BY segment`,
    [Ticks.projectionName],
  );
}

const checkpointOf = (row: SegmentRow): Checkpoint => ({ transactionId: row.transaction_id, position: Number(row.position) });

describe('CheckpointPasses', () => {
  let t: EventStoreModule;
  let statements = 0;
  /** A manager whose every statement is counted. */
  let counting: EntityManager;

  beforeAll(async () => {
    t = await startEventStoreModule({
      events: [Ticked],
      projections: [Ticks],
      // Neither a poll nor the idle tick within the test: the runners leave the idle segments alone.
      engine: { pollIntervalMs: 120_000, leaseTtlMs: 120_000, segments: { default: SEGMENTS, byName: {} }, idleSegmentDelayMs: 10_000 },
    });
    await createCountingTables(t.database.url, Ticks.prefix);
    await eventually('every segment leased', async () =>
      (await segmentRows(t)).every((row) => row.lease_owner) && (await segmentRows(t)).length === SEGMENTS ? true : undefined,
    );
    // Its statements go prepared, straight to the pool, and are told to TypeORM's logger: counted there.
    counting = {
      queryRunner: undefined,
      dataSource: { driver: t.dataSource.driver, logger: { logQuery: () => statements++, logQueryError: () => undefined } },
    } as unknown as EntityManager;
  });
  afterAll(() => t?.close());

  it('moves asked for in one turn go in one statement, and each answers for its own fence', async () => {
    let stream = '';
    for (let n = 0; !stream; n++) if (segmentOfKey(`passes-${n}`, SEGMENTS) === 0) stream = `passes-${n}`;
    await t.store.append(stream, [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
    const head = await headOfLog(t.dataSource);
    const [, one, two, three] = await segmentRows(t);
    const passes = new CheckpointPasses(() => counting);
    const pass = (row: SegmentRow, token = row.lease_token) =>
      passes.pass({ name: row.name, owner: row.lease_owner, token, from: checkpointOf(row), to: head, ttlMs: 120_000 });

    statements = 0;
    const answers = await Promise.all([
      pass(one),
      pass(two),
      pass(three, String(BigInt(three.lease_token) + 1n)), // a stale token: not this holder's row
    ]);

    expect(answers).toEqual([true, true, false]);
    expect(statements).toBe(1);
    const after = await segmentRows(t);
    expect(after.map((row) => Number(row.position))).toEqual([expect.any(Number), head.position, head.position, Number(three.position)]);
  });

  it('a second move of the same segment in the same turn goes in a later statement, fenced by where the first left it', async () => {
    let stream = '';
    for (let n = 0; !stream; n++) if (segmentOfKey(`again-${n}`, SEGMENTS) === 0) stream = `again-${n}`;
    await t.store.append(stream, [new Ticked({ n: 2 })], { expectedVersion: NO_STREAM });
    const head = await headOfLog(t.dataSource);
    const [, one] = await segmentRows(t);
    expect(Number(one.position)).toBeLessThan(head.position);
    const passes = new CheckpointPasses(() => counting);
    const move = () =>
      passes.pass({ name: one.name, owner: one.lease_owner, token: one.lease_token, from: checkpointOf(one), to: head, ttlMs: 120_000 });

    statements = 0;
    const answers = await Promise.all([move(), move()]);

    // In one statement both would have answered for the one update; apart, the second finds the row
    // no longer where it expected it.
    expect(answers).toEqual([true, false]);
    expect(statements).toBe(2);
    expect(Number((await segmentRows(t))[1].position)).toBe(head.position);
  });
});
