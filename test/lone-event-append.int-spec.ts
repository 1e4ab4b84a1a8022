import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { EventType, NO_STREAM, WrongExpectedVersionError } from '../src/event-sourcing/index.js';
import { type EventStoreModule, startEventStoreModule } from './support/event-store-module.js';
import { countStatements } from './support/statement-counter.js';

// A lone single-event append at an exact expected version (a deposit's) is one plain INSERT of
// version expected + 1: UNIQUE(stream_id, version) and the insert trigger's "an event follows its
// stream's previous version" refuse every wrong expectation. Its refusals are then told apart by a
// second statement, the checked append (APPEND_SQL), so callers see exactly what they saw before.

@EventType('test.LoneThingHappened')
class LoneThingHappened {
  readonly n!: number;
  constructor(data: LoneThingHappened) {
    Object.assign(this, data);
  }
}

const event = (n: number) => new LoneThingHappened({ n });

describe('a lone single-event append', () => {
  let t: EventStoreModule;

  beforeAll(async () => {
    t = await startEventStoreModule({ events: [LoneThingHappened], poolSize: 8 });
  });
  afterAll(() => t?.close());

  async function streamAt(version: number): Promise<string> {
    const id = `lone-${randomUUID()}`;
    for (let n = 1; n <= version; n++) await t.store.append(id, [event(n)], { expectedVersion: n === 1 ? NO_STREAM : n - 1 });
    return id;
  }

  async function refusal(promise: Promise<unknown>): Promise<WrongExpectedVersionError> {
    const error = await promise.then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(WrongExpectedVersionError);
    return error as WrongExpectedVersionError;
  }

  it('is one INSERT statement, with no CTE reading the stream version first', async () => {
    const id = await streamAt(2);
    const statements = countStatements(t.dataSource, /INSERT INTO events/);
    statements.start();
    const result = await t.store.append(id, [event(3)], { expectedVersion: 2 });
    statements.stop();
    expect(result).toMatchObject({ streamId: id, version: 3 });
    expect(statements.texts).toHaveLength(1);
    expect(statements.texts[0]).not.toMatch(/^WITH/);
    const [stored] = await t.store.readStream(id, { fromVersion: 3 });
    expect(stored).toMatchObject({ version: 3, position: result.position, data: { n: 3 } });
  });

  it('behind, ahead, on a missing stream or NO_STREAM on an existing one: refused with the actual version, nothing written', async () => {
    const id = await streamAt(2);
    expect(await refusal(t.store.append(id, [event(9)], { expectedVersion: 1 }))).toMatchObject({ expectedVersion: 1, actualVersion: 2 });
    expect(await refusal(t.store.append(id, [event(9)], { expectedVersion: 5 }))).toMatchObject({ expectedVersion: 5, actualVersion: 2 });
    expect(await refusal(t.store.append(id, [event(9)], { expectedVersion: NO_STREAM }))).toMatchObject({ actualVersion: 2 });
    const missing = `lone-${randomUUID()}`;
    expect(await refusal(t.store.append(missing, [event(9)], { expectedVersion: 1 }))).toMatchObject({ actualVersion: 0 });
    expect((await t.store.readStream(id)).map((stored) => stored.version)).toEqual([1, 2]);
    expect(await t.store.streamVersion(missing)).toBe(0);
  });

  it('while another transaction holds the next version uncommitted: refused either way it ends, never a database error', async () => {
    const id = await streamAt(1);
    const other = new pg.Client({ connectionString: t.database.url });
    await other.connect();
    try {
      // Another writer (say, another instance) has inserted version 2 and not committed yet.
      await other.query('BEGIN');
      await other.query(
        `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
         VALUES ($1, 2, 'test.LoneThingHappened', 1, $2, '{"n":2}', '{}')`,
        [id, randomUUID()],
      );
      // Version 3 expected at 2: version 2 is not visible, the trigger finds nothing to follow (LE002).
      expect(await refusal(t.store.append(id, [event(3)], { expectedVersion: 2 }))).toMatchObject({ actualVersion: 1 });
      // Version 2 expected at 1: waits on the unique index for the other writer, which then commits.
      const racing = refusal(t.store.append(id, [event(2)], { expectedVersion: 1 }));
      await new Promise((resolve) => setTimeout(resolve, 200)); // let it reach the index and wait
      await other.query('COMMIT');
      expect(await racing).toMatchObject({ expectedVersion: 1, actualVersion: 2 });
    } finally {
      await other.query('ROLLBACK').catch(() => undefined);
      await other.end();
    }
    expect((await t.store.readStream(id)).map((stored) => (stored.data as LoneThingHappened).n)).toEqual([1, 2]);
  });

  it('at the largest expected version an integer column allows: refused as a version conflict, not a database error', async () => {
    const id = await streamAt(1);
    // The checked append answers 2147483647 with the actual version; the plain INSERT of version
    // 2147483648 would be "integer out of range".
    expect(await refusal(t.store.append(id, [event(9)], { expectedVersion: 2_147_483_647 }))).toMatchObject({ actualVersion: 1 });
  });

  it('stores the same data and metadata jsonb as the checked append (unicode, nesting, numbers)', async () => {
    const tricky = { n: 1, s: 'é😀\u2028"\\', nested: { a: [1, [2, { b: null }], 'x'], big: 1e21, small: 0.1, neg: -0, t: true } };
    const lone = `lone-${randomUUID()}`;
    const checked = `lone-${randomUUID()}`;
    await t.store.append(lone, [new LoneThingHappened(tricky as never)], { expectedVersion: NO_STREAM });
    await t.store.append(checked, [new LoneThingHappened(tricky as never), event(2)], { expectedVersion: NO_STREAM });
    const rows = (await t.dataSource.query(
      `SELECT stream_id, data::text AS data, (metadata - 'eventId' - 'correlationId' - 'causationId' - 'occurredAt')::text AS metadata
       FROM events WHERE stream_id IN ($1, $2) AND version = 1`,
      [lone, checked],
    )) as Array<{ stream_id: string; data: string; metadata: string }>;
    const byStream = new Map(rows.map((row) => [row.stream_id, row]));
    expect(byStream.get(lone)!.data).toBe(byStream.get(checked)!.data);
    expect(byStream.get(lone)!.metadata).toBe(byStream.get(checked)!.metadata);
  });

  it('two store instances racing single-event appends to one stream at one version: exactly one wins each round', async () => {
    const second = await startEventStoreModule({ events: [LoneThingHappened], poolSize: 8, database: t.database });
    try {
      const id = await streamAt(1);
      for (let version = 1; version <= 5; version++) {
        const outcomes = await Promise.allSettled(
          [t.store, second.store, t.store, second.store, t.store, second.store].map((store, writer) =>
            store.append(id, [event(version * 10 + writer)], { expectedVersion: version }),
          ),
        );
        const won = outcomes.filter((outcome) => outcome.status === 'fulfilled');
        const lost = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason as unknown] : []));
        expect(won).toHaveLength(1);
        for (const reason of lost) {
          expect(reason).toBeInstanceOf(WrongExpectedVersionError);
          expect(reason).toMatchObject({ expectedVersion: version, actualVersion: version + 1 });
        }
      }
      expect((await t.store.readStream(id)).map((stored) => stored.version)).toEqual([1, 2, 3, 4, 5, 6]);
    } finally {
      await second.close();
    }
  });

  it('a retry with the same event id at a version taken meanwhile: a version conflict, whichever unique index PostgreSQL checks first', async () => {
    // PostgreSQL checks a row's unique indexes in OID order. A restored dump (constraints created by
    // name: event_id before stream_version) or a REINDEX CONCURRENTLY puts the event id's first.
    const own = await startEventStoreModule({ events: [LoneThingHappened], poolSize: 2 });
    try {
      await own.dataSource.query('REINDEX INDEX CONCURRENTLY events_stream_version_unique');
      for (const store of [t.store, own.store]) {
        const id = `lone-${randomUUID()}`;
        const eventIds = [randomUUID()];
        await store.append(id, [event(1)], { expectedVersion: NO_STREAM, eventIds });
        expect(await refusal(store.append(id, [event(1)], { expectedVersion: NO_STREAM, eventIds }))).toMatchObject({ actualVersion: 1 });
        await store.append(id, [event(2)], { expectedVersion: 1, eventIds: [randomUUID()] });
        expect(await refusal(store.append(id, [event(2)], { expectedVersion: 1, eventIds }))).toMatchObject({ actualVersion: 2 });
      }
    } finally {
      await own.close();
    }
  });
});
