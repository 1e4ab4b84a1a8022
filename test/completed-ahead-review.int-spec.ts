// Review of completed_ahead (issue 17): a process manager's events completed past its checkpoint are
// remembered in its row and skipped by every later holder. These tests try to lose that memory, or
// to make it skip an event nobody reacted to, through the operator's actions on a segment that holds
// entries (skip, retry) and a change of the segment count — against a process manager whose reaction
// is deliberately NOT idempotent (one Reacted appended per call), on the real engine and PostgreSQL.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import {
  ANY,
  EventStore,
  NO_STREAM,
  type ProcessManager,
  ReactionHandlers,
  type RecordedEvent,
  segmentOfKey,
} from '../src/event-sourcing/index.js';
import { COMPLETED_AHEAD_LIMIT } from '../src/event-sourcing/completed-ahead.js';
import {
  type EngineModule,
  Ticked,
  eventually,
  headOfLog,
  rows,
  startEngineModule,
  untilNothingHeldBack,
} from './support/projection-fixtures.js';
import { Reacted, committedEffects, reactedStream } from './support/reaction-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const NAME = 'ahead-reactor';

/** Set per test: whether the reaction to an event fails (it throws before its effect), and after how long. */
const behaviour: {
  fails: (event: RecordedEvent<Ticked>) => boolean;
  failAfterMs: number;
  /** Awaited before a failing reaction throws (after failAfterMs). */
  waitBeforeFailing?: () => Promise<void>;
} = { fails: () => false, failAfterMs: 0 };

/** Keyed by the `<key>` of its stream (`ahead-<key>-<uuid>`); each reaction appends one Reacted. */
@Injectable()
class AheadReactor implements ProcessManager {
  readonly kind = 'process-manager';
  readonly name = NAME;
  readonly handlers = new ReactionHandlers().on(Ticked, (event) => this.react(event));
  constructor(private readonly store: EventStore) {}
  keyOf(event: RecordedEvent): string {
    // Events it has no handler for (Reacted) each a key of their own: all of them may run at once.
    return event.data instanceof Reacted ? `noise:${event.position}` : event.streamId.split('-')[1];
  }
  private async react(event: RecordedEvent<Ticked>): Promise<void> {
    if (behaviour.fails(event)) {
      await sleep(behaviour.failAfterMs);
      await behaviour.waitBeforeFailing?.();
      throw new Error(`refused ${event.streamId}`);
    }
    await this.store.append(reactedStream(NAME), [new Reacted({ source: event.position, by: 'x' })], { expectedVersion: ANY });
  }
}

/** Keys (stream prefixes) that fall in `segment` of `count`. */
function keysOf(segment: number, count: number, how: number): string[] {
  const found: string[] = [];
  for (let i = 0; found.length < how; i++) if (segmentOfKey(`k${i}`, count) === segment) found.push(`k${i}`);
  return found;
}

describe('completed_ahead under operator actions and a re-split', () => {
  let database: TestDatabase;
  let t: EngineModule | undefined;
  /** Every engine a test started (`t`, a writer, a first holder) and has not closed: closed after the test even when it fails. */
  const running = new Set<EngineModule>();
  /** Ends a step a test holds (see the takeover case). */
  let release: (() => void) | undefined;

  // A database of its own per test: each reads every event of the log.
  beforeEach(async () => {
    database = await createTestDatabase();
  });
  afterEach(async () => {
    release?.(); // a step still held would keep its engine from closing
    release = undefined;
    for (const engine of [...running].reverse()) await engine.close();
    t = undefined;
    behaviour.fails = () => false;
    behaviour.failAfterMs = 0;
    behaviour.waitBeforeFailing = undefined;
    await database?.drop();
  });

  const start = async (segments: number, enabled = true, maxAttempts = 1000, batchSize = 100): Promise<EngineModule> => {
    const engine = await startEngineModule({
      url: database.url,
      events: [Ticked, Reacted],
      projections: [],
      processManagers: [AheadReactor],
      engine: {
        enabled,
        segments: { default: segments, byName: {} },
        reactionConcurrency: 8,
        leaseTtlMs: 4000,
        pollIntervalMs: 50,
        batchSize,
        retryBaseMs: 50,
        maxAttempts,
      },
    });
    const tracked: EngineModule = {
      ...engine,
      close: async () => {
        running.delete(tracked);
        await engine.close();
      },
    };
    running.add(tracked);
    return tracked;
  };

  /** Appends one Ticked to a new stream of each key; the positions, by key. */
  async function appendOnePerKey(module: EngineModule, keys: readonly string[]): Promise<Map<string, number>> {
    const positions = new Map<string, number>();
    for (const key of keys) {
      const { position } = await module.store.append(`ahead-${key}-${randomUUID()}`, [new Ticked({ n: 1 })], {
        expectedVersion: NO_STREAM,
      });
      positions.set(key, position);
    }
    return positions;
  }

  const aheadOf = async (module: EngineModule) =>
    rows<{ name: string; completed_ahead: string[]; status: string; position: string }>(
      module.dataSource,
      `SELECT name, completed_ahead, status, position FROM projection_checkpoints WHERE projection = $1 ORDER BY segment`,
      [NAME],
    );

  const caughtUp = async (module: EngineModule) => {
    const head = await headOfLog(module.dataSource);
    await eventually(
      'every segment at the head of the log',
      async () => {
        const found = await aheadOf(module);
        return found.length > 0 && found.every((row) => Number(row.position) >= head.position || row.status !== 'running')
          ? true
          : undefined;
      },
      30_000,
    );
  };

  /** Every Ticked of the log and how many effects it has (0: never reacted to; 2: twice). */
  async function effectsOfEveryTick(module: EngineModule): Promise<Array<{ position: number; effects: number }>> {
    const ticks = await rows<{ position: string }>(module.dataSource, `SELECT position FROM events WHERE type = 'engine-test.Ticked'`);
    const effects = await committedEffects(module.dataSource, NAME);
    return ticks.map(({ position }) => ({ position: Number(position), effects: effects.get(Number(position)) ?? 0 }));
  }

  it('a change of the segment count keeps what the old segments completed ahead: no event reacted to twice', async () => {
    // One segment; the first event's reaction fails (attempts counted, still running) and the other
    // keys' events complete past it: remembered in the row.
    const writer = await start(1, false);
    const keys = keysOf(0, 1, 8);
    const positions = await appendOnePerKey(writer, keys);
    await writer.close();
    const failing = positions.get(keys[0])!;
    behaviour.fails = (event) => event.position === failing;
    t = await start(1);
    await eventually(
      'the other keys completed ahead of the failing one',
      async () => {
        const remembered = new Set((await aheadOf(t!))[0]?.completed_ahead.map(Number));
        return keys.slice(1).every((key) => remembered.has(positions.get(key)!)) ? true : undefined;
      },
      30_000,
    );
    await t.close();
    // The operator fixes the cause and restarts with two segments.
    behaviour.fails = () => false;
    t = await start(2);
    await caughtUp(t);
    const effects = await effectsOfEveryTick(t);
    expect(effects.filter((tick) => tick.effects !== 1)).toEqual([]);
  });

  it('a change of the segment count keeps what an old segment completed beyond the earliest: no event reacted to twice', async () => {
    // Two segments: one stuck on a failing event (running, retrying), the other passes its events.
    const stuckKeys = keysOf(0, 2, 2);
    const freeKeys = keysOf(1, 2, 4);
    const writer = await start(2, false);
    const stuck = await appendOnePerKey(writer, stuckKeys);
    await writer.close();
    const failing = stuck.get(stuckKeys[0])!;
    behaviour.fails = (event) => event.position === failing;
    t = await start(2);
    await appendOnePerKey(t, freeKeys);
    const head = await headOfLog(t.dataSource);
    await eventually(
      'the free segment at the head, the stuck one behind',
      async () => {
        const found = await aheadOf(t!);
        return Number(found[1].position) >= head.position ? true : undefined;
      },
      30_000,
    );
    await t.close();
    behaviour.fails = () => false;
    t = await start(3);
    await caughtUp(t);
    const effects = await effectsOfEveryTick(t);
    expect(effects.filter((tick) => tick.effects !== 1)).toEqual([]);
  });

  it('a change of the segment count carries an old segment more than a page ahead of the earliest (read a page at a time)', async () => {
    const stuckKeys = keysOf(0, 2, 1);
    const freeKeys = keysOf(1, 2, 3);
    const writer = await start(2, false);
    const stuck = await appendOnePerKey(writer, stuckKeys);
    await writer.close();
    behaviour.fails = (event) => event.position === stuck.get(stuckKeys[0])!;
    t = await start(2, true, 1000, 500);
    for (const key of freeKeys) {
      const ticks = Array.from({ length: 900 }, (_, n) => new Ticked({ n }));
      await t.store.append(`ahead-${key}-${randomUUID()}`, ticks, { expectedVersion: NO_STREAM });
    }
    const head = await headOfLog(t.dataSource);
    await eventually(
      'the free segment at the head',
      async () => (Number((await aheadOf(t!))[1].position) >= head.position ? true : undefined),
      60_000,
    );
    await t.close();
    behaviour.fails = () => false;
    t = await start(3);
    await caughtUp(t);
    const effects = await effectsOfEveryTick(t);
    expect(effects).toHaveLength(2_701);
    expect(effects.filter((tick) => tick.effects !== 1)).toEqual([]);
  }, 90_000);

  it('skip of the failed event with entries ahead: the others once each, the skipped one never', async () => {
    const writer = await start(1, false);
    const keys = keysOf(0, 1, 6);
    const positions = await appendOnePerKey(writer, keys);
    // The others must be read with the failing one: its three attempts are over in a fraction of a
    // second, and the others held back that long by a transaction elsewhere in the cluster (another
    // test file's) would be read only after it failed, never completed ahead of it.
    await untilNothingHeldBack(writer.dataSource);
    await writer.close();
    const failing = positions.get(keys[0])!;
    behaviour.fails = (event) => event.position === failing;
    t = await start(1, true, 3);
    await eventually('failed', async () => ((await aheadOf(t!))[0]?.status === 'failed' ? true : undefined), 30_000);
    // The other keys' events completed past the failed one are remembered.
    expect((await aheadOf(t))[0].completed_ahead.map(Number)).toEqual(
      expect.arrayContaining(keys.slice(1).map((key) => positions.get(key)!)),
    );
    await t.admin.skip(NAME);
    await appendOnePerKey(t, keys); // later events of the same keys: reacted to, not skipped
    await caughtUp(t);
    const effects = await effectsOfEveryTick(t);
    expect(effects.filter((tick) => tick.effects !== (tick.position === failing ? 0 : 1))).toEqual([]);
    expect((await aheadOf(t))[0].completed_ahead).toEqual([]);
  });

  it('retry of the failed event with entries ahead: every event once', async () => {
    const writer = await start(1, false);
    const keys = keysOf(0, 1, 6);
    const positions = await appendOnePerKey(writer, keys);
    await writer.close();
    const failing = positions.get(keys[0])!;
    behaviour.fails = (event) => event.position === failing;
    t = await start(1, true, 3);
    await eventually('failed', async () => ((await aheadOf(t!))[0]?.status === 'failed' ? true : undefined), 30_000);
    behaviour.fails = () => false;
    await t.admin.retry(NAME);
    await appendOnePerKey(t, keys);
    await caughtUp(t);
    const effects = await effectsOfEveryTick(t);
    expect(effects.filter((tick) => tick.effects !== 1)).toEqual([]);
    expect((await aheadOf(t))[0].completed_ahead).toEqual([]);
  });

  it('remembers no event it has no handler for: a skip past them leaves nothing stale that crowds a later entry out', async () => {
    // A failing Ticked, then a limit's worth of events the reactor has no handler for, in one batch:
    // they complete at once past the failing one.
    const writer = await start(1, false, 2, 2 * COMPLETED_AHEAD_LIMIT);
    const first = await appendOnePerKey(writer, ['k0']);
    const noise = Array.from({ length: COMPLETED_AHEAD_LIMIT }, (_, i) => new Reacted({ source: -1 - i, by: 'noise' }));
    await writer.store.append(`noise-${randomUUID()}`, noise, { expectedVersion: NO_STREAM });
    await writer.close();
    behaviour.fails = (event) => event.position === first.get('k0');
    behaviour.failAfterMs = 1000; // the others complete meanwhile (within the third of the lease)
    t = await start(1, true, 2, 2 * COMPLETED_AHEAD_LIMIT);
    await eventually('failed', async () => ((await aheadOf(t!))[0]?.status === 'failed' ? true : undefined), 30_000);
    // The operator skips it; the batch after it has nothing to react to (the checkpoint moves past it
    // in one statement).
    await t.admin.skip(NAME);
    await caughtUp(t);
    // Later: one key's step fails once while another key's completes past it (remembered, then skipped
    // when the failed one is retried).
    // (The failure is armed before the append: the runner may react before the append's caller resumes.)
    let failures = 0;
    behaviour.failAfterMs = 200;
    behaviour.fails = (event) => event.streamId.startsWith('ahead-k1-') && failures++ === 0;
    await appendOnePerKey(t, ['k1', 'k2']);
    await caughtUp(t);
    const effects = await effectsOfEveryTick(t);
    expect(failures).toBeGreaterThan(0);
    expect(effects.filter((tick) => tick.effects !== (tick.position === first.get('k0') ? 0 : 1))).toEqual([]);
    expect((await aheadOf(t))[0].completed_ahead).toEqual([]);
  }, 60_000);

  it('a takeover while one lane is still busy: nothing skipped; what the old holder completed in that batch is reacted to again', async () => {
    const writer = await start(1, false);
    const keys = keysOf(0, 1, 5);
    const positions = await appendOnePerKey(writer, keys);
    // The first holder must read all five in one batch: the held step below blocks that batch until
    // the test releases it, so an event held back by a transaction elsewhere in the cluster (another
    // test file's) would never be read and its lane never committed.
    await untilNothingHeldBack(writer.dataSource);
    await writer.close();
    // The first holder's step for keys[0] waits (a slow step); the other lanes complete meanwhile.
    const slow = positions.get(keys[0])!;
    const held = new Promise<void>((resolve) => (release = resolve));
    let slowCalls = 0;
    behaviour.fails = (event) => event.position === slow && slowCalls++ === 0;
    behaviour.failAfterMs = 0;
    behaviour.waitBeforeFailing = () => held;
    const first = await start(1);
    await eventually(
      'the other lanes committed by the first holder',
      async () => {
        const effects = await committedEffects(first.dataSource, NAME);
        return keys.slice(1).every((key) => effects.get(positions.get(key)!) === 1) ? true : undefined;
      },
      30_000,
    );
    // Its lease ends before its batch does (a pause, a partition): another instance takes over.
    await first.dataSource.query(
      `UPDATE projection_checkpoints SET lease_expires_at = clock_timestamp() - interval '1 second' WHERE projection = $1`,
      [NAME],
    );
    t = await start(1);
    await caughtUp(t);
    release!(); // the old holder's slow step ends now: its lanes' memory is refused with the checkpoint
    await first.close();
    const effects = await effectsOfEveryTick(t);
    expect(effects.filter((tick) => tick.effects === 0)).toEqual([]); // nothing skipped
    // At least once: the first holder's completed lanes were not written (its batch never ended while
    // it held the lease), so the new holder reacted to them again.
    expect(effects.filter((tick) => tick.effects === 2).map((tick) => tick.position)).toEqual(
      keys.slice(1).map((key) => positions.get(key)!),
    );
    expect((await aheadOf(t))[0].completed_ahead).toEqual([]);
  });
});
