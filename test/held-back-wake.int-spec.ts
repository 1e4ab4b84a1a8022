// A runner held back by a transaction in flight (its read stops below pg_snapshot_xmin) reads again
// when that transaction ends, when it is one of this process's: an append's, or another runner's
// batch (issue 14, the projection lag). Before, it slept 5, 10, 20, then 50 ms whatever happened.
// What is checked: the runner waits on exactly the holder's transaction id, and the holder's end is
// reported to what ends those waits (TransactionEnds, whose wait is unit-tested in
// transaction-ends.spec.ts). Whether a given wait is ended by the end or by its own timer is a race
// (a read in flight when the holder commits is no longer held back), so it is not asserted; no
// wall-clock figure is either.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EventNotifier, NO_STREAM } from '../src/event-sourcing/index.js';
import { type EventStoreModule, startEventStoreModule } from './support/event-store-module.js';
import {
  Ticked,
  countingTables,
  createCountingTables,
  defineCountingProjection,
  eventually,
  gate,
  rows,
  waitUntilApplied,
} from './support/projection-fixtures.js';

const Ticks = defineCountingProjection('held-back-ticks', 'async', [Ticked]);
const Blocker = defineCountingProjection('held-back-blocker', 'async', [Ticked]);

describe('a runner held back by a transaction of this process', () => {
  let t: EventStoreModule;
  /** The transaction ids runners waited on, and the ends reported, in order. */
  const waits: string[] = [];
  const ends: string[] = [];

  beforeAll(async () => {
    t = await startEventStoreModule({
      events: [Ticked],
      projections: [Ticks, Blocker],
      // No poll within the test: a read that happens is a wake-up's or a held-back wait's.
      engine: { pollIntervalMs: 60_000, leaseTtlMs: 60_000 },
    });
    await createCountingTables(t.database.url, Ticks.prefix);
    await createCountingTables(t.database.url, Blocker.prefix);
    const transactionEnds = t.moduleRef.get(EventNotifier).transactionEnds;
    const waitFor = transactionEnds.waitFor.bind(transactionEnds);
    transactionEnds.waitFor = (transactionId: string, ms: number) => {
      waits.push(transactionId);
      return waitFor(transactionId, ms);
    };
    const ended = transactionEnds.ended.bind(transactionEnds);
    transactionEnds.ended = (transactionId: string) => {
      ends.push(transactionId);
      ended(transactionId);
    };
  });
  afterAll(() => t?.close());

  it('reads again when the append transaction holding it back commits', async () => {
    const held = gate();
    let holderId!: string;
    const holding = gate();
    const holder = t.store.transaction(async () => {
      const appended = await t.store.append('holder', [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
      holderId = appended.events[0].transactionId;
      holding.open();
      await held.promise;
    });
    await holding.promise;
    // Committed after the holder took its id: every runner's read stops below the holder.
    const after = await t.store.append('after-holder', [new Ticked({ n: 2 })], { expectedVersion: NO_STREAM });
    await eventually('a runner waiting on the holder', async () => (waits.includes(holderId) ? true : undefined));
    expect(ends).not.toContain(holderId);
    held.open();
    await holder;
    expect(ends).toContain(holderId); // reported as it committed
    await waitUntilApplied(t.dataSource, Ticks.projectionName, after.position);
  });

  it("reads again when another runner's batch holding it back commits", async () => {
    const held = gate();
    const blocking = gate();
    Blocker.behaviour.onApplied = async (event) => {
      if (event.streamId !== 'blocked') return;
      blocking.open();
      await held.promise; // the batch has written (it has its transaction id) and holds it open
    };
    try {
      await t.store.append('blocked', [new Ticked({ n: 3 })], { expectedVersion: NO_STREAM });
      await blocking.promise;
      // The blocker's batch transaction, idle in its transaction while its handler waits: the one
      // whose last statement wrote the blocker's log (the other projection's batch of the same
      // event can be idle in its transaction between two statements just now, and be picked
      // instead: then no runner ever waits on it). pg_stat_activity shows a 32-bit xid, widened
      // here to the xid8 the runners wait on by the epoch of the next xid (it is older by less than
      // 2^31): the 32-bit text equals the xid8's only in a cluster's first epoch (this failed
      // against a server past it, pg_resetwal -e 3).
      const [batch] = await rows<{ xid: string }>(
        t.dataSource,
        `SELECT (s.next - ((s.next % 4294967296 - a.backend_xid::text::bigint + 4294967296) % 4294967296))::text AS xid
           FROM pg_stat_activity a, (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS next) s
          WHERE a.datname = current_database() AND a.state = 'idle in transaction' AND a.backend_xid IS NOT NULL
            AND a.query LIKE $1`,
        [`INSERT INTO ${countingTables(Blocker.prefix).log} %`],
      );
      expect(batch).toBeDefined();
      const after = await t.store.append('after-batch', [new Ticked({ n: 4 })], { expectedVersion: NO_STREAM });
      await eventually('a runner waiting on the batch', async () => (waits.includes(batch.xid) ? true : undefined));
      expect(ends).not.toContain(batch.xid);
      held.open();
      await eventually('the end of the batch reported', async () => (ends.includes(batch.xid) ? true : undefined));
      await waitUntilApplied(t.dataSource, Ticks.projectionName, after.position);
    } finally {
      held.open();
      Blocker.behaviour.onApplied = undefined;
    }
  });
});
