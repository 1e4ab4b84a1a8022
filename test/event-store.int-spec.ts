import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import pg from 'pg';
import { QueryFailedError } from 'typeorm';
import {
  ANY,
  type Checkpoint,
  Clock,
  EventType,
  NO_STREAM,
  type RecordedEvent,
  START_OF_LOG,
  WrongExpectedVersionError,
} from '../src/event-sourcing/index.js';
import { type EventStoreModule, startEventStoreModule } from './support/event-store-module.js';

// ---------------------------------------------------------------------------------------------
// Test events: registered under stable names, never class names.

@EventType('test.ThingCreated')
class ThingCreated {
  readonly name!: string;
  constructor(data: ThingCreated) {
    Object.assign(this, data);
  }
}

@EventType('test.ThingRenamed')
class ThingRenamed {
  readonly name!: string;
  constructor(data: ThingRenamed) {
    Object.assign(this, data);
  }
}

@EventType('test.ThingNoted', { schemaVersion: 2 })
class ThingNoted {
  readonly note!: string;
  readonly tags!: string[];
  constructor(data: ThingNoted) {
    Object.assign(this, data);
  }
}

/** An in-memory listener of the EventBus: records what it got and whether it was already committed. */
@EventsHandler(ThingCreated, ThingRenamed, ThingNoted)
class RecordingHandler implements IEventHandler<object> {
  readonly seen: object[] = [];
  handle(event: object): void {
    this.seen.push(event);
  }
}

const FIXED_NOW = new Date('2031-02-03T04:05:06.789Z');
const fixedClock: Clock = { now: () => new Date(FIXED_NOW) };

// ---------------------------------------------------------------------------------------------
// Helpers

const streamId = (prefix = 'thing') => `${prefix}-${randomUUID()}`;

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

function uniqueViolation(error: unknown): { code?: string; constraint?: string } {
  expect(error).toBeInstanceOf(QueryFailedError);
  return (error as QueryFailedError).driverError as { code?: string; constraint?: string };
}

/**
 * Reads the global log from `from` until `done` holds (or a timeout). The gap-safe reader waits for
 * every transaction older than the oldest one in flight, cluster-wide: a transaction of another test
 * file (other database, same server) can hold it back for a moment, hence the polling.
 */
async function readAllUntil(
  t: EventStoreModule,
  from: Checkpoint,
  done: (events: RecordedEvent[]) => boolean,
  limit = 1000,
): Promise<{ events: RecordedEvent[]; checkpoint: Checkpoint }> {
  const events: RecordedEvent[] = [];
  let checkpoint = from;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const page = await t.log.readAll(checkpoint, limit);
    events.push(...page.events);
    checkpoint = page.checkpoint;
    if (done(events) || Date.now() > deadline) return { events, checkpoint };
    if (page.events.length < limit) await sleep(20);
  }
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function countEvents(t: EventStoreModule, stream?: string): Promise<number> {
  const [row] = (await (stream === undefined
    ? t.dataSource.query('SELECT count(*)::int AS n FROM events')
    : t.dataSource.query('SELECT count(*)::int AS n FROM events WHERE stream_id = $1', [stream]))) as Array<{ n: number }>;
  return row.n;
}

// =============================================================================================

describe('EventStore against PostgreSQL', () => {
  let t: EventStoreModule;
  let handler: RecordingHandler;

  beforeAll(async () => {
    t = await startEventStoreModule({
      events: [ThingCreated, ThingRenamed, ThingNoted],
      providers: [RecordingHandler],
      poolSize: 60,
      clock: fixedClock,
    });
    handler = t.moduleRef.get(RecordingHandler);
  });
  afterAll(() => t?.close());

  // -------------------------------------------------------------------------------------------
  describe('append and readStream', () => {
    it('appends one event and reads it back as an instance of its class, with version, position and metadata', async () => {
      const id = streamId();
      const before = Date.now();
      const result = await t.store.append(id, [new ThingCreated({ name: 'first' })], { expectedVersion: NO_STREAM });

      expect(result.streamId).toBe(id);
      expect(result.version).toBe(1);
      expect(Number.isSafeInteger(result.position) && result.position > 0).toBe(true);

      const events = await t.store.readStream(id);
      expect(events).toHaveLength(1);
      const [event] = events;
      expect(event.data).toBeInstanceOf(ThingCreated);
      expect(event.data).toEqual(new ThingCreated({ name: 'first' }));
      expect(event.streamId).toBe(id);
      expect(event.version).toBe(1);
      expect(event.position).toBe(result.position);
      expect(event.type).toBe('test.ThingCreated');
      expect(event.schemaVersion).toBe(1);
      // Without the command's metadata, the event is its own correlation and cause.
      expect(event.metadata.eventId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(event.metadata.correlationId).toBe(event.metadata.eventId);
      expect(event.metadata.causationId).toBe(event.metadata.eventId);
      expect(event.metadata.occurredAt).toBe(FIXED_NOW.toISOString());
      expect(event.recordedAt).toBeInstanceOf(Date);
      expect(event.recordedAt.getTime()).toBeGreaterThanOrEqual(before - 5_000);
      expect(event.recordedAt.getTime()).toBeLessThanOrEqual(Date.now() + 5_000);
      expect(event.transactionId).toBe(result.events[0].transactionId);
    });

    it('appends many events atomically, in order, in one transaction, and reads them in version order', async () => {
      const id = streamId();
      await t.store.append(id, [new ThingCreated({ name: 'a' })], { expectedVersion: NO_STREAM });
      const batch = [new ThingRenamed({ name: 'b' }), new ThingNoted({ note: 'n1', tags: ['x', 'y'] }), new ThingRenamed({ name: 'c' })];
      const context = { correlationId: `corr-${randomUUID()}`, causationId: `cause-${randomUUID()}`, actor: 'tester' };
      const result = await t.store.append(id, batch, { expectedVersion: 1, metadata: context });

      expect(result.version).toBe(4);
      expect(result.events.map((event) => event.version)).toEqual([2, 3, 4]);
      expect(result.position).toBe(result.events[2].position);
      expect(new Set(result.events.map((event) => event.transactionId)).size).toBe(1);

      const events = await t.store.readStream(id);
      expect(events.map((event) => event.version)).toEqual([1, 2, 3, 4]);
      expect(events.map((event) => event.data.constructor)).toEqual([ThingCreated, ThingRenamed, ThingNoted, ThingRenamed]);
      expect(events[1].data).toBeInstanceOf(ThingRenamed);
      expect(events[2].data).toBeInstanceOf(ThingNoted);
      expect(events[2].data).toEqual(new ThingNoted({ note: 'n1', tags: ['x', 'y'] }));
      expect(events[2].schemaVersion).toBe(2);
      for (let index = 1; index < events.length; index++) {
        expect(events[index].position).toBeGreaterThan(events[index - 1].position);
      }
      expect(events.slice(1).map((event) => event.position)).toEqual(result.events.map((event) => event.position));
      // The batch shares the caller's metadata; each event still has its own id.
      for (const event of events.slice(1)) {
        expect(event.metadata).toMatchObject({ ...context, occurredAt: FIXED_NOW.toISOString() });
        expect(event.recordedAt).toBeInstanceOf(Date);
      }
      expect(new Set(events.map((event) => event.metadata.eventId)).size).toBe(4);
      // The first append ran in another transaction than the batch.
      expect(events[0].transactionId).not.toBe(events[1].transactionId);

      // What is stored is the stable type name, the schema version and plain JSON data.
      const rows = (await t.dataSource.query(
        'SELECT type, schema_version, data, metadata FROM events WHERE stream_id = $1 ORDER BY version',
        [id],
      )) as Array<{ type: string; schema_version: number; data: unknown; metadata: { eventId: string } }>;
      expect(rows.map((row) => row.type)).toEqual(['test.ThingCreated', 'test.ThingRenamed', 'test.ThingNoted', 'test.ThingRenamed']);
      expect(rows[2]).toMatchObject({ schema_version: 2, data: { note: 'n1', tags: ['x', 'y'] } });
      expect(rows.map((row) => row.metadata.eventId)).toEqual(events.map((event) => event.metadata.eventId));
    });

    it('takes correlation, causation and actor from the metadata given, never the event id or anything else', async () => {
      const id = streamId();
      const eventId = randomUUID();
      await t.store.append(id, [new ThingCreated({ name: 'm' })], {
        expectedVersion: NO_STREAM,
        eventIds: [eventId],
        metadata: {
          correlationId: 'given-corr',
          causationId: 'given-cause',
          eventId: 'not-this-one',
          occurredAt: 'not-this-either',
        } as never,
      });
      const [event] = await t.store.readStream(id);
      expect(event.metadata).toEqual({
        eventId,
        correlationId: 'given-corr',
        causationId: 'given-cause',
        occurredAt: FIXED_NOW.toISOString(),
      });
    });

    it('refuses a batch as a whole when one of its events cannot be stored: nothing of it is written', async () => {
      const id = streamId();
      await t.store.append(id, [new ThingCreated({ name: 'a' })], { expectedVersion: NO_STREAM });
      const taken = (await t.store.readStream(id))[0].metadata.eventId;
      const totalBefore = await countEvents(t);

      // The third event reuses an existing event id: the database refuses that row, so the whole statement.
      const error = await failureOf(
        t.store.append(id, [new ThingRenamed({ name: 'b' }), new ThingRenamed({ name: 'c' }), new ThingRenamed({ name: 'd' })], {
          expectedVersion: 1,
          eventIds: [randomUUID(), randomUUID(), taken],
        }),
      );
      expect(uniqueViolation(error)).toMatchObject({ code: '23505', constraint: 'events_event_id_unique' });
      expect((await t.store.readStream(id)).map((event) => event.version)).toEqual([1]);
      expect(await countEvents(t)).toBe(totalBefore);

      // An event class that is not registered is refused before anything is written.
      class Unregistered {}
      await expect(t.store.append(id, [new ThingRenamed({ name: 'e' }), new Unregistered()], { expectedVersion: 1 })).rejects.toThrow(
        /not a registered event class/,
      );
      await expect(t.store.append(id, [], { expectedVersion: 1 })).rejects.toThrow(RangeError);
      expect(await countEvents(t)).toBe(totalBefore);
    });

    it('reads version ranges of a stream (inclusive), and nothing for ranges outside it or unknown streams', async () => {
      const id = streamId();
      await t.store.append(
        id,
        ['v1', 'v2', 'v3', 'v4', 'v5'].map((name, index) => (index === 0 ? new ThingCreated({ name }) : new ThingRenamed({ name }))),
        { expectedVersion: NO_STREAM },
      );
      const names = (events: RecordedEvent[]) => events.map((event) => (event.data as { name: string }).name);
      const versions = (events: RecordedEvent[]) => events.map((event) => event.version);

      expect(names(await t.store.readStream(id))).toEqual(['v1', 'v2', 'v3', 'v4', 'v5']);
      expect(versions(await t.store.readStream(id, { fromVersion: 3 }))).toEqual([3, 4, 5]);
      expect(versions(await t.store.readStream(id, { toVersion: 2 }))).toEqual([1, 2]);
      expect(versions(await t.store.readStream(id, { fromVersion: 2, toVersion: 4 }))).toEqual([2, 3, 4]);
      expect(names(await t.store.readStream(id, { fromVersion: 4, toVersion: 4 }))).toEqual(['v4']);
      expect(await t.store.readStream(id, { fromVersion: 4, toVersion: 3 })).toEqual([]);
      expect(await t.store.readStream(id, { fromVersion: 6 })).toEqual([]);
      expect(await t.store.readStream(streamId('missing'))).toEqual([]);
      expect(await t.store.streamVersion(id)).toBe(5);
      expect(await t.store.streamVersion(streamId('missing'))).toBe(0);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('expected version', () => {
    async function streamAtVersion2(): Promise<string> {
      const id = streamId();
      await t.store.append(id, [new ThingCreated({ name: 'a' }), new ThingRenamed({ name: 'b' })], { expectedVersion: NO_STREAM });
      return id;
    }

    async function expectConflict(id: string, expected: number | typeof NO_STREAM, actual: number): Promise<void> {
      const totalBefore = await countEvents(t);
      const streamBefore = await t.store.readStream(id);
      const error = await failureOf(
        t.store.append(id, [new ThingRenamed({ name: 'x' }), new ThingRenamed({ name: 'y' })], { expectedVersion: expected }),
      );
      expect(error).toBeInstanceOf(WrongExpectedVersionError);
      const conflict = error as WrongExpectedVersionError;
      expect(conflict.streamId).toBe(id);
      expect(conflict.expectedVersion).toBe(expected);
      expect(conflict.actualVersion).toBe(actual);
      expect(conflict.code).toBe('WRONG_EXPECTED_VERSION');
      // Nothing written, anywhere.
      expect(await t.store.readStream(id)).toEqual(streamBefore);
      expect(await countEvents(t)).toBe(totalBefore);
    }

    it('NO_STREAM on an existing stream is refused with the actual version, and writes nothing', async () => {
      await expectConflict(await streamAtVersion2(), NO_STREAM, 2);
    });

    it('an exact version that is behind, ahead or on a missing stream is refused, and writes nothing', async () => {
      const id = await streamAtVersion2();
      await expectConflict(id, 1, 2);
      await expectConflict(id, 3, 2);
      await expectConflict(streamId('missing'), 1, 0);
    });

    it('the exact current version appends; ANY appends to a new and to an existing stream', async () => {
      const id = await streamAtVersion2();
      expect((await t.store.append(id, [new ThingRenamed({ name: 'c' })], { expectedVersion: 2 })).version).toBe(3);
      expect((await t.store.append(id, [new ThingRenamed({ name: 'd' })], { expectedVersion: ANY })).version).toBe(4);
      const fresh = streamId();
      expect((await t.store.append(fresh, [new ThingCreated({ name: 'e' })], { expectedVersion: ANY })).version).toBe(1);
      expect((await t.store.readStream(id)).map((event) => event.version)).toEqual([1, 2, 3, 4]);
      expect(await t.store.streamVersion(fresh)).toBe(1);
    });

    it('refuses an expected version that is not a positive integer, NO_STREAM or ANY', async () => {
      const id = await streamAtVersion2();
      for (const invalid of [0, -1, 1.5]) {
        await expect(t.store.append(id, [new ThingRenamed({ name: 'z' })], { expectedVersion: invalid })).rejects.toThrow(RangeError);
      }
      expect(await t.store.streamVersion(id)).toBe(2);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('concurrency', () => {
    const WRITERS = 50;

    /** Opens the pool's connections first, so the writers below really run at the same time. */
    async function warmPool(): Promise<void> {
      await Promise.all(Array.from({ length: WRITERS }, () => t.dataSource.query('SELECT pg_sleep(0.05)')));
    }

    it(`${WRITERS} parallel appends at the same expected version: exactly one wins, the others get WrongExpectedVersionError`, async () => {
      const id = streamId();
      await t.store.append(id, [new ThingCreated({ name: 'start' })], { expectedVersion: NO_STREAM });
      await warmPool();
      const totalBefore = await countEvents(t);

      const results = await Promise.allSettled(
        Array.from({ length: WRITERS }, (_, writer) =>
          t.store.append(id, [new ThingRenamed({ name: `writer-${writer}` })], { expectedVersion: 1 }),
        ),
      );

      const won = results.filter((result) => result.status === 'fulfilled');
      const lost = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(WRITERS - 1);
      for (const { reason } of lost) {
        expect(reason).toBeInstanceOf(WrongExpectedVersionError);
        expect(reason).toMatchObject({ streamId: id, expectedVersion: 1, actualVersion: 2 });
      }
      const events = await t.store.readStream(id);
      expect(events.map((event) => event.version)).toEqual([1, 2]);
      const winner = (won[0] as PromiseFulfilledResult<{ events: readonly RecordedEvent[] }>).value;
      expect(events[1].data).toEqual(winner.events[0].data);
      expect(await countEvents(t)).toBe(totalBefore + 1);
    });

    it(`${WRITERS} parallel creations of the same stream (NO_STREAM): exactly one wins`, async () => {
      const id = streamId();
      await warmPool();
      const results = await Promise.allSettled(
        Array.from({ length: WRITERS }, (_, writer) =>
          t.store.append(id, [new ThingCreated({ name: `creator-${writer}` }), new ThingRenamed({ name: 'then' })], {
            expectedVersion: NO_STREAM,
          }),
        ),
      );
      const lost = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
      expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
      expect(lost).toHaveLength(WRITERS - 1);
      for (const { reason } of lost) {
        expect(reason).toMatchObject({ name: 'WrongExpectedVersionError', expectedVersion: NO_STREAM, actualVersion: 2 });
      }
      expect((await t.store.readStream(id)).map((event) => event.version)).toEqual([1, 2]);
    });

    it(`${WRITERS} parallel appends with ANY all succeed, with distinct consecutive versions`, async () => {
      const id = streamId();
      await t.store.append(id, [new ThingCreated({ name: 'start' })], { expectedVersion: NO_STREAM });
      await warmPool();
      const results = await Promise.allSettled(
        Array.from({ length: WRITERS }, (_, writer) =>
          t.store.append(id, [new ThingRenamed({ name: `any-${writer}` })], { expectedVersion: ANY }),
        ),
      );
      const failures = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
      expect(failures.map(({ reason }) => String(reason))).toEqual([]);
      const events = await t.store.readStream(id);
      expect(events.map((event) => event.version)).toEqual(Array.from({ length: WRITERS + 1 }, (_, index) => index + 1));
      expect(new Set(events.slice(1).map((event) => (event.data as ThingRenamed).name)).size).toBe(WRITERS);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('immutability', () => {
    const ATTEMPTS = [
      'UPDATE events SET data = \'{"name":"changed"}\'',
      'UPDATE events SET data = data WHERE false',
      'DELETE FROM events',
      'DELETE FROM events WHERE false',
      'TRUNCATE events',
      'TRUNCATE events CASCADE',
      `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
         SELECT stream_id, version, type, schema_version, event_id, data, metadata FROM events
       ON CONFLICT (event_id) DO UPDATE SET data = '{"name":"upserted"}'`,
    ];

    async function snapshot(client: pg.Client): Promise<unknown[]> {
      return (await client.query('SELECT * FROM events ORDER BY position')).rows;
    }

    async function expectAllRefused(client: pg.Client): Promise<void> {
      const before = await snapshot(client);
      expect(before.length).toBeGreaterThan(0);
      for (const sql of ATTEMPTS) {
        const error = (await failureOf(client.query(sql))) as { message: string; code: string };
        expect({ sql, message: error.message }).toEqual({ sql, message: expect.stringMatching(/the event store is append-only/) });
        expect(error.code).toBe('23001'); // restrict_violation
      }
      expect(await snapshot(client)).toEqual(before);
    }

    beforeAll(async () => {
      await t.store.append(streamId(), [new ThingCreated({ name: 'immutable' })], { expectedVersion: NO_STREAM });
    });

    it('refuses UPDATE, DELETE and TRUNCATE through the application DataSource', async () => {
      const before = await countEvents(t);
      for (const sql of ATTEMPTS) {
        await expect(t.dataSource.query(sql)).rejects.toThrow(/the event store is append-only/);
      }
      expect(await countEvents(t)).toBe(before);
    });

    it('refuses them to a superuser', async () => {
      await withClient(t.database.url, async (client) => {
        const { rows } = await client.query('SELECT rolsuper FROM pg_roles WHERE rolname = current_user');
        expect(rows[0].rolsuper).toBe(true);
        await expectAllRefused(client);
      });
    });

    it('refuses them with session_replication_role = replica (which silences ordinary triggers)', async () => {
      await withClient(t.database.url, async (client) => {
        await client.query('SET session_replication_role = replica');
        expect((await client.query('SHOW session_replication_role')).rows[0].session_replication_role).toBe('replica');
        await expectAllRefused(client);
      });
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('gap-safe global read', () => {
    it('does not return an event committed after a still-open transaction that took an earlier position; skips nothing once it commits (raw pg transaction)', async () => {
      const start = await t.log.readAll(START_OF_LOG, 100_000);
      const slowStream = streamId('slow');
      const fastStream = streamId('fast');
      const slow = new pg.Client({ connectionString: t.database.url });
      await slow.connect();
      try {
        // A writer that took its position first and is slow to commit (same column list as the store).
        await slow.query('BEGIN');
        const eventId = randomUUID();
        const { rows } = await slow.query(
          `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
           VALUES ($1, 1, 'test.ThingCreated', 1, $2, $3, $4) RETURNING position, transaction_id`,
          [
            slowStream,
            eventId,
            JSON.stringify({ name: 'slow' }),
            JSON.stringify({ eventId, correlationId: eventId, causationId: eventId, occurredAt: FIXED_NOW.toISOString() }),
          ],
        );
        const slowPosition = Number(rows[0].position);

        const fast = await t.store.append(fastStream, [new ThingCreated({ name: 'fast' })], { expectedVersion: NO_STREAM });
        expect(fast.position).toBeGreaterThan(slowPosition);

        // The gap-safe reader holds back everything at or after the open transaction.
        const held = await t.log.readAll(start.checkpoint, 10_000);
        const heldStreams = held.events.map((event) => event.streamId);
        expect(heldStreams).not.toContain(fastStream);
        expect(heldStreams).not.toContain(slowStream);
        for (const event of held.events) expect(BigInt(event.transactionId)).toBeLessThan(BigInt(rows[0].transaction_id));

        // A naive reader (position > last seen) sees the later event now…
        const naiveFirst = (await t.dataSource.query(
          'SELECT position, stream_id FROM events WHERE position > $1 ORDER BY position',
          [0],
        )) as Array<{
          position: string;
          stream_id: string;
        }>;
        expect(naiveFirst.map((row) => row.stream_id)).toContain(fastStream);
        const naiveLast = Number(naiveFirst[naiveFirst.length - 1].position);
        expect(naiveLast).toBeGreaterThanOrEqual(fast.position);

        await slow.query('COMMIT');

        // …and so skips the slow one for ever, although it is committed now.
        const naiveNext = (await t.dataSource.query('SELECT stream_id FROM events WHERE position > $1 ORDER BY position', [
          naiveLast,
        ])) as Array<{
          stream_id: string;
        }>;
        const naiveSeen = [...naiveFirst, ...naiveNext].map((row) => row.stream_id);
        expect(naiveSeen).toContain(fastStream);
        expect(naiveSeen).not.toContain(slowStream);

        // The gap-safe reader, continuing from its checkpoint, returns both, in commit order, once each.
        const next = await readAllUntil(t, held.checkpoint, (events) => events.some((event) => event.streamId === fastStream));
        const mine = next.events.filter((event) => event.streamId === slowStream || event.streamId === fastStream);
        expect(mine.map((event) => event.streamId)).toEqual([slowStream, fastStream]);
        expect(mine[0].position).toBe(slowPosition);
        expect(mine[0].data).toBeInstanceOf(ThingCreated);
        const positions = [...held.events, ...next.events].map((event) => event.position);
        expect(new Set(positions).size).toBe(positions.length);
      } finally {
        await slow.query('ROLLBACK').catch(() => undefined);
        await slow.end();
      }
    });

    it('holds back a later commit while an EventStore.transaction that appended earlier is still open, then returns both', async () => {
      const start = await t.log.readAll(START_OF_LOG, 100_000);
      const slowStream = streamId('slow');
      const fastStream = streamId('fast');
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let appended!: (position: number) => void;
      const slowAppended = new Promise<number>((resolve) => (appended = resolve));

      const slow = t.store.transaction(async (tx) => {
        const result = await tx.append(slowStream, [new ThingCreated({ name: 'slow' })], { expectedVersion: NO_STREAM });
        appended(result.position);
        await gate;
        return result;
      });
      try {
        const slowPosition = await slowAppended;
        const fast = await t.store.append(fastStream, [new ThingCreated({ name: 'fast' })], { expectedVersion: NO_STREAM });
        expect(fast.position).toBeGreaterThan(slowPosition);

        const held = await t.log.readAll(start.checkpoint, 10_000);
        expect(held.events.map((event) => event.streamId)).not.toContain(fastStream);
        expect(held.events.map((event) => event.streamId)).not.toContain(slowStream);
        // A reader given a checkpoint past the open transaction would be wrong; the returned one is not.
        expect(held.events.every((event) => event.position < fast.position)).toBe(true);

        release();
        await slow;
        const next = await readAllUntil(t, held.checkpoint, (events) => events.some((event) => event.streamId === fastStream));
        expect(next.events.filter((event) => [slowStream, fastStream].includes(event.streamId)).map((event) => event.streamId)).toEqual([
          slowStream,
          fastStream,
        ]);
      } finally {
        release();
        await slow.catch(() => undefined);
      }
    });

    it('pages through the log with any page size in the same order, each event once', async () => {
      const streams = [streamId(), streamId(), streamId()];
      for (const [index, id] of streams.entries()) {
        await t.store.append(id, [new ThingCreated({ name: `p${index}` }), new ThingRenamed({ name: `q${index}` })], {
          expectedVersion: NO_STREAM,
        });
      }
      const hasAll = (events: RecordedEvent[]) => streams.every((id) => events.filter((event) => event.streamId === id).length === 2);
      const whole = await readAllUntil(t, START_OF_LOG, hasAll, 100_000);
      const paged = await readAllUntil(t, START_OF_LOG, (events) => events.length >= whole.events.length, 3);

      expect(hasAll(whole.events)).toBe(true);
      const key = (event: RecordedEvent) => `${event.transactionId}/${event.position}`;
      expect(paged.events.slice(0, whole.events.length).map(key)).toEqual(whole.events.map(key));
      expect(new Set(paged.events.map(key)).size).toBe(paged.events.length);
      // Within a transaction, position order; across transactions, transaction order.
      for (let index = 1; index < whole.events.length; index++) {
        const [previous, current] = [whole.events[index - 1], whole.events[index]];
        const before =
          BigInt(previous.transactionId) < BigInt(current.transactionId) ||
          (previous.transactionId === current.transactionId && previous.position < current.position);
        expect(before).toBe(true);
      }
      expect(
        whole.events.every(
          (event) => event.data instanceof ThingCreated || event.data instanceof ThingRenamed || event.data instanceof ThingNoted,
        ),
      ).toBe(true);
      // Nothing after the end: the checkpoint of the last page returns nothing new from this test.
      const after = await t.log.readAll(whole.checkpoint);
      expect(after.events.filter((event) => streams.includes(event.streamId))).toEqual([]);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('publishing on the EventBus', () => {
    let subscribed: object[];
    let subscription: { unsubscribe(): void };

    beforeAll(() => {
      subscribed = [];
      subscription = t.eventBus.subscribe((event) => subscribed.push(event));
    });
    afterAll(() => subscription.unsubscribe());

    const ofStream = (events: object[], names: string[]) =>
      events.filter((event) => names.includes((event as { name?: string }).name ?? ''));

    it('publishes the appended events only after COMMIT, as instances of their classes', async () => {
      const id = streamId();
      const names = [`created-${id}`, `renamed-${id}`];
      let insideWork: { subscribed: number; handled: number; committed: number } | undefined;
      let committedWhenPublished: number | undefined;
      const watcher = t.eventBus.subscribe((event) => {
        if ((event as { name?: string }).name === names[0]) {
          // Runs synchronously on publish: read on another connection whether the events are visible.
          void countEvents(t, id).then((count) => (committedWhenPublished = count));
        }
      });
      try {
        const result = await t.store.transaction(async (tx) => {
          await tx.append(id, [new ThingCreated({ name: names[0] })], { expectedVersion: NO_STREAM });
          await tx.append(id, [new ThingRenamed({ name: names[1] })], { expectedVersion: 1 });
          await sleep(100); // time enough for any eager publication to arrive
          insideWork = {
            subscribed: ofStream(subscribed, names).length,
            handled: ofStream(handler.seen, names).length,
            committed: await countEvents(t, id),
          };
          return 'done';
        });
        expect(result).toBe('done');
        expect(insideWork).toEqual({ subscribed: 0, handled: 0, committed: 0 });

        const published = ofStream(subscribed, names);
        expect(published).toHaveLength(2);
        expect(published[0]).toBeInstanceOf(ThingCreated);
        expect(published[1]).toBeInstanceOf(ThingRenamed);
        expect(ofStream(handler.seen, names).map((event) => event.constructor)).toEqual([ThingCreated, ThingRenamed]);
        for (let waited = 0; committedWhenPublished === undefined && waited < 5_000; waited += 10) await sleep(10);
        expect(committedWhenPublished).toBe(2);
      } finally {
        watcher.unsubscribe();
      }
    });

    it('publishes a single append after it commits, and nothing for a refused one', async () => {
      const id = streamId();
      const name = `single-${id}`;
      await t.store.append(id, [new ThingCreated({ name })], { expectedVersion: NO_STREAM });
      expect(ofStream(subscribed, [name])).toHaveLength(1);
      expect(ofStream(subscribed, [name])[0]).toBeInstanceOf(ThingCreated);

      const refused = `refused-${id}`;
      await expect(t.store.append(id, [new ThingRenamed({ name: refused })], { expectedVersion: NO_STREAM })).rejects.toBeInstanceOf(
        WrongExpectedVersionError,
      );
      await sleep(50);
      expect(ofStream(subscribed, [refused])).toEqual([]);
      expect(ofStream(handler.seen, [refused])).toEqual([]);
    });

    it('a transaction whose work throws after appending publishes nothing and stores nothing', async () => {
      const first = streamId();
      const second = streamId();
      const names = [`a-${first}`, `b-${second}`];
      const totalBefore = await countEvents(t);
      const boom = new Error('work failed after appending');
      const error = await failureOf(
        t.store.transaction(async (tx) => {
          await tx.append(first, [new ThingCreated({ name: names[0] })], { expectedVersion: NO_STREAM });
          await tx.append(second, [new ThingCreated({ name: names[1] })], { expectedVersion: NO_STREAM });
          throw boom;
        }),
      );
      expect(error).toBe(boom);
      await sleep(100);
      expect(ofStream(subscribed, names)).toEqual([]);
      expect(ofStream(handler.seen, names)).toEqual([]);
      expect(await t.store.readStream(first)).toEqual([]);
      expect(await t.store.readStream(second)).toEqual([]);
      expect(await countEvents(t)).toBe(totalBefore);
    });

    it('a transaction whose work swallows a failed append is not reported as committed, publishes nothing and stores nothing', async () => {
      const first = streamId();
      const existing = streamId();
      await t.store.append(existing, [new ThingCreated({ name: 'existing' })], { expectedVersion: NO_STREAM });
      const taken = (await t.store.readStream(existing))[0].metadata.eventId;
      const name = `swallowed-${first}`;
      const totalBefore = await countEvents(t);

      // The duplicate event id makes PostgreSQL abort the transaction; the work ignores the error.
      const outcome = await t.store
        .transaction(async (tx) => {
          await tx.append(first, [new ThingCreated({ name })], { expectedVersion: NO_STREAM });
          await tx.append(first, [new ThingRenamed({ name: 'dup' })], { expectedVersion: 1, eventIds: [taken] }).catch(() => undefined);
          return 'work returned';
        })
        .then(
          (value) => ({ resolved: value }),
          (error: unknown) => ({ rejected: error }),
        );

      await sleep(100);
      expect(ofStream(subscribed, [name])).toEqual([]);
      expect(await t.store.readStream(first)).toEqual([]);
      expect(await countEvents(t)).toBe(totalBefore);
      // The caller must not believe its work was committed: it gets the error that aborted the transaction.
      expect(outcome).toHaveProperty('rejected');
      expect(uniqueViolation((outcome as { rejected: unknown }).rejected)).toMatchObject({ constraint: 'events_event_id_unique' });
    });

    it('a transaction whose work handles a refused expected version (nothing aborted) commits and publishes the rest', async () => {
      const id = streamId();
      const other = streamId();
      await t.store.append(other, [new ThingCreated({ name: 'other' })], { expectedVersion: NO_STREAM });
      const name = `kept-${id}`;
      let refusal: unknown;
      await t.store.transaction(async (tx) => {
        await tx.append(id, [new ThingCreated({ name })], { expectedVersion: NO_STREAM });
        refusal = await failureOf(tx.append(other, [new ThingRenamed({ name: 'refused' })], { expectedVersion: NO_STREAM }));
      });
      expect(refusal).toBeInstanceOf(WrongExpectedVersionError);
      expect(refusal).toMatchObject({ expectedVersion: NO_STREAM, actualVersion: 1 });
      expect((await t.store.readStream(id)).map((event) => (event.data as ThingCreated).name)).toEqual([name]);
      expect(await t.store.streamVersion(other)).toBe(1);
      expect(ofStream(subscribed, [name])).toHaveLength(1);
      expect(ofStream(subscribed, ['refused'])).toEqual([]);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('caller-chosen event ids', () => {
    it('appending the same event id twice fails on the unique constraint and stores nothing the second time', async () => {
      const id = streamId();
      const other = streamId();
      const eventId = randomUUID();
      await t.store.append(id, [new ThingCreated({ name: 'once' })], { expectedVersion: NO_STREAM, eventIds: [eventId] });
      expect((await t.store.readStream(id))[0].metadata.eventId).toBe(eventId);
      const totalBefore = await countEvents(t);

      // Same stream, a retry with ANY…
      const again = await failureOf(
        t.store.append(id, [new ThingRenamed({ name: 'twice' })], { expectedVersion: ANY, eventIds: [eventId] }),
      );
      expect(uniqueViolation(again)).toMatchObject({ code: '23505', constraint: 'events_event_id_unique' });
      // …another stream…
      const elsewhere = await failureOf(
        t.store.append(other, [new ThingCreated({ name: 'elsewhere' })], { expectedVersion: NO_STREAM, eventIds: [eventId] }),
      );
      expect(uniqueViolation(elsewhere)).toMatchObject({ code: '23505', constraint: 'events_event_id_unique' });
      // …or twice within one batch.
      const twin = randomUUID();
      const inBatch = await failureOf(
        t.store.append(other, [new ThingCreated({ name: 'x' }), new ThingRenamed({ name: 'y' })], {
          expectedVersion: NO_STREAM,
          eventIds: [twin, twin],
        }),
      );
      expect(uniqueViolation(inBatch)).toMatchObject({ code: '23505', constraint: 'events_event_id_unique' });

      expect((await t.store.readStream(id)).map((event) => (event.data as ThingCreated).name)).toEqual(['once']);
      expect(await t.store.readStream(other)).toEqual([]);
      expect(await countEvents(t)).toBe(totalBefore);
      const [row] = (await t.dataSource.query('SELECT count(*)::int AS n FROM events WHERE event_id = $1', [eventId])) as Array<{
        n: number;
      }>;
      expect(row.n).toBe(1);
    });

    it('refuses eventIds that do not give exactly one id per event, or that are not UUIDs, writing nothing', async () => {
      const id = streamId();
      await expect(
        t.store.append(id, [new ThingCreated({ name: 'a' }), new ThingRenamed({ name: 'b' })], {
          expectedVersion: NO_STREAM,
          eventIds: [randomUUID()],
        }),
      ).rejects.toThrow(RangeError);
      await expect(
        t.store.append(id, [new ThingCreated({ name: 'a' })], { expectedVersion: NO_STREAM, eventIds: ['not-a-uuid'] }),
      ).rejects.toThrow(/uuid/i);
      expect(await t.store.readStream(id)).toEqual([]);
    });
  });
});
