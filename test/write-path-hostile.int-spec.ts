import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { QueryFailedError } from 'typeorm';
import { CommandRunner, type Decider, EventType, NO_STREAM, WrongExpectedVersionError } from '../src/event-sourcing/index.js';
import { type EventStoreModule, startEventStoreModule } from './support/event-store-module.js';

// A hostile review of issue 14's write path (group commit, aggregate cache): inputs and failures
// that one append of a group, or one fold after an append, could turn into a wrong answer for a
// committed append or for the other appends of its group.

@EventType('test.HostileTicked')
class HostileTicked {
  readonly n!: number;
  constructor(data: HostileTicked) {
    Object.assign(this, data);
  }
}

/** A counter whose evolve keeps its history in an array shared along a fold (as the account's sets are). */
interface Counter {
  readonly count: number;
  readonly seen: number[];
}

/** Set by a test: the next fold of an event with this n throws, after it changed the shared array. */
let explodeOn: number | undefined;

const counterDecider: Decider<Counter, HostileTicked> = {
  initialState: { count: 0, seen: [] },
  evolve(state, event) {
    const seen = state.count === 0 ? [] : state.seen; // never the initial state's array
    seen.push(event.n);
    if (event.n === explodeOn) {
      explodeOn = undefined;
      throw new Error(`evolve failed on ${event.n}`);
    }
    return { count: state.count + 1, seen };
  },
};

const streamId = (prefix = 'hostile') => `${prefix}-${randomUUID()}`;
const ticks = (count: number, from = 0) => Array.from({ length: count }, (_, index) => new HostileTicked({ n: from + index + 1 }));

let t: EventStoreModule;
let runner: CommandRunner;
beforeAll(async () => {
  t = await startEventStoreModule({ events: [HostileTicked], poolSize: 12 });
  runner = t.moduleRef.get(CommandRunner);
});
afterAll(() => t?.close());

const versionsOf = async (id: string) =>
  ((await t.dataSource.query('SELECT version FROM events WHERE stream_id = $1 ORDER BY version', [id])) as Array<{ version: number }>).map(
    (row) => row.version,
  );

describe('the aggregate cache after an append committed', () => {
  it('an evolve that throws while folding the appended events: the committed append is still answered as committed, and the half-folded state is never used', async () => {
    const id = streamId();
    const increment = (n: number) => ({ streamId: id, decider: counterDecider, decide: () => [new HostileTicked({ n })] });
    await runner.run(increment(1));
    await runner.run(increment(2)); // the cache now holds { count: 2, seen: [1, 2] }

    explodeOn = 3;
    // The append of 3 commits; folding it afterwards (for the cache) throws. The caller must not be
    // told "failed": a client would send the deposit again, and it would be written twice.
    const result = await runner.run(increment(3));
    expect(result).toMatchObject({ streamId: id, version: 3 });
    expect(await versionsOf(id)).toEqual([1, 2, 3]);

    // The next command decides on the stream as stored, not on the state the failed fold changed.
    let decidedOn: Counter | undefined;
    await runner.run({
      streamId: id,
      decider: counterDecider,
      decide: (state) => {
        decidedOn = { count: state.count, seen: [...state.seen] };
        return [new HostileTicked({ n: 4 })];
      },
    });
    expect(decidedOn).toEqual({ count: 3, seen: [1, 2, 3] });
    expect(await versionsOf(id)).toEqual([1, 2, 3, 4]);
  });
});

describe('group commit against hostile members', () => {
  it('a group larger than the cap: every append acknowledged, no statement over 1,000 events but the one append larger than that, alone', async () => {
    const small = Array.from({ length: 1_200 }, () => streamId('cap'));
    const big = streamId('cap-big');
    const before = { ...t.store.groupAppend.stats };
    const results = await Promise.all([
      ...small.map((id) => t.store.append(id, ticks(1), { expectedVersion: NO_STREAM })),
      t.store.append(big, ticks(1_001), { expectedVersion: NO_STREAM }),
    ]);
    expect(results.at(-1)).toMatchObject({ streamId: big, version: 1_001 });
    expect(results.slice(0, -1).every((result) => result.version === 1)).toBe(true);
    const perTransaction = (await t.dataSource.query(
      `SELECT transaction_id, count(*)::int AS events, bool_or(stream_id = $2) AS has_big FROM events
       WHERE stream_id = ANY($1) OR stream_id = $2 GROUP BY transaction_id`,
      [small, big],
    )) as Array<{ events: number; has_big: boolean }>;
    expect(perTransaction.reduce((sum, row) => sum + row.events, 0)).toBe(1_200 + 1_001);
    for (const row of perTransaction) {
      if (row.has_big) expect(row.events).toBe(1_001);
      else expect(row.events).toBeLessThanOrEqual(1_000);
    }
    expect(t.store.groupAppend.stats.groups).toBeGreaterThan(before.groups);
  }, 60_000);

  it('a member the schema refuses (a 10,000-character stream id, over its CHECK) fails alone, with its own error, never as a version conflict', async () => {
    const streams = Array.from({ length: 32 }, () => streamId());
    const hostile = 20;
    streams[hostile] = `huge-${'x'.repeat(10_000)}-${randomUUID()}`;
    const results = await Promise.allSettled(streams.map((id) => t.store.append(id, ticks(2), { expectedVersion: NO_STREAM })));
    for (const [index, result] of results.entries()) {
      if (index === hostile) {
        expect(result.status).toBe('rejected');
        const reason = (result as PromiseRejectedResult).reason;
        expect(reason).not.toBeInstanceOf(WrongExpectedVersionError);
        expect((reason as QueryFailedError).driverError).toMatchObject({ code: '23514' });
      } else {
        expect(result.status).toBe('fulfilled');
        expect(await versionsOf(streams[index])).toEqual([1, 2]);
      }
    }
  });

  it("a trigger that refuses one member's rows (a hostile or stricter database) fails that member only", async () => {
    await t.dataSource.query(`
      CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.stream_id LIKE 'refused-%' THEN RAISE EXCEPTION 'refused by policy' USING ERRCODE = 'LE099'; END IF;
        RETURN NEW;
      END $$`);
    await t.dataSource.query('CREATE TRIGGER refuse_marked BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_marked()');
    try {
      const streams = Array.from({ length: 32 }, (_, index) => streamId(index === 7 || index === 25 ? 'refused' : 'allowed'));
      const results = await Promise.allSettled(streams.map((id) => t.store.append(id, ticks(1), { expectedVersion: NO_STREAM })));
      for (const [index, result] of results.entries()) {
        const refused = streams[index].startsWith('refused-');
        expect(result.status).toBe(refused ? 'rejected' : 'fulfilled');
        if (refused) expect(((result as PromiseRejectedResult).reason as QueryFailedError).driverError).toMatchObject({ code: 'LE099' });
        expect(await versionsOf(streams[index])).toEqual(refused ? [] : [1]);
      }
    } finally {
      await t.dataSource.query('DROP TRIGGER refuse_marked ON events');
      await t.dataSource.query('DROP FUNCTION refuse_marked()');
    }
  });
});
