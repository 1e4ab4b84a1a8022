import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { QueryFailedError } from 'typeorm';
import { type AppendResult, EventType, NO_STREAM, WrongExpectedVersionError } from '../src/event-sourcing/index.js';
import { type EventStoreModule, startEventStoreModule } from './support/event-store-module.js';

// Group commit of concurrent appends (src/event-sourcing/group-commit.ts, group-append.ts): appends
// that need no transaction of their own share one statement and one commit under load, each checked
// against its own expected version and answered on its own; a lone append never waits.

@EventType('test.GroupTicked')
class GroupTicked {
  readonly n!: number;
  constructor(data: GroupTicked) {
    Object.assign(this, data);
  }
}

const POOL = 12;
const CLIENTS = 32;

const streamId = () => `group-${randomUUID()}`;
const ticks = (count: number, from = 0) => Array.from({ length: count }, (_, index) => new GroupTicked({ n: from + index + 1 }));

interface Row {
  stream_id: string;
  version: number;
  transaction_id: string;
  position: string;
}

// With one group statement in flight (the default) and with three: then appends of one stream must
// also stay out of a group while another statement holds that stream.
describe.each([1, 3])('group commit of concurrent appends, %i statement(s) in flight', (statements) => {
  let t: EventStoreModule;

  beforeAll(async () => {
    t = await startEventStoreModule({ events: [GroupTicked], poolSize: POOL, appendGroupStatements: statements });
    // Opens the pool's connections, so the first statements of a test do not also pay for connecting.
    await Promise.all(Array.from({ length: POOL }, () => t.dataSource.query('SELECT pg_sleep(0.02)')));
  });
  afterAll(() => t?.close());

  const stats = () => ({ ...t.store.groupAppend.stats });
  const rowsOf = async (streams: readonly string[]): Promise<Row[]> =>
    (await t.dataSource.query(
      'SELECT stream_id, version, transaction_id, position FROM events WHERE stream_id = ANY($1) ORDER BY position',
      [streams],
    )) as Row[];

  it(`${CLIENTS} concurrent appends to different streams are all acknowledged, in fewer transactions than appends`, async () => {
    const streams = Array.from({ length: CLIENTS }, streamId);
    const before = stats();
    const results = await Promise.all(
      streams.map((id, index) => t.store.append(id, ticks(1 + (index % 3)), { expectedVersion: NO_STREAM })),
    );

    const rows = await rowsOf(streams);
    expect(rows).toHaveLength(streams.reduce((sum, _, index) => sum + 1 + (index % 3), 0));
    for (const [index, id] of streams.entries()) {
      const own = rows.filter((row) => row.stream_id === id);
      expect(own.map((row) => row.version)).toEqual(Array.from({ length: 1 + (index % 3) }, (_, v) => v + 1));
      expect(new Set(own.map((row) => row.transaction_id)).size).toBe(1); // an append is one transaction
      expect(results[index]).toMatchObject({ streamId: id, version: 1 + (index % 3) });
      expect(results[index].events.map((event) => event.transactionId)).toEqual(own.map((row) => row.transaction_id));
      expect(results[index].events.map((event) => event.position)).toEqual(own.map((row) => Number(row.position)));
    }
    // The proof of grouping: fewer commits than appends.
    const transactions = new Set(rows.map((row) => row.transaction_id));
    expect(transactions.size).toBeLessThan(CLIENTS);
    const after = stats();
    expect(after.groups).toBeGreaterThan(before.groups);
    expect(after.appends - before.appends).toBe(CLIENTS);
    expect(after.statements - before.statements).toBe(transactions.size);
    // Within one group statement, positions follow the streams' order and each stream's versions.
    for (const transaction of transactions) {
      const own = rows.filter((row) => row.transaction_id === transaction);
      const streamsInOrder = [...new Set(own.map((row) => row.stream_id))];
      expect(streamsInOrder).toEqual([...streamsInOrder].sort());
    }
  });

  it('in one concurrent group, exactly the appends with a wrong expected version fail, each with its actual version', async () => {
    const streams = Array.from({ length: CLIENTS }, streamId);
    await Promise.all(streams.map((id) => t.store.append(id, ticks(2), { expectedVersion: NO_STREAM })));
    const wrong = new Set([3, 4, 17, 30, 31]); // 3 and more queue behind the first statements
    const before = stats();

    const results = await Promise.allSettled(
      streams.map((id, index) => t.store.append(id, ticks(1, 2), { expectedVersion: wrong.has(index) ? (index % 2 === 0 ? 1 : 5) : 2 })),
    );

    for (const [index, result] of results.entries()) {
      if (wrong.has(index)) {
        expect(result.status).toBe('rejected');
        const reason = (result as PromiseRejectedResult).reason as WrongExpectedVersionError;
        expect(reason).toBeInstanceOf(WrongExpectedVersionError);
        expect(reason).toMatchObject({ streamId: streams[index], expectedVersion: index % 2 === 0 ? 1 : 5, actualVersion: 2 });
      } else {
        expect(result.status).toBe('fulfilled');
        expect((result as PromiseFulfilledResult<AppendResult>).value.version).toBe(3);
      }
    }
    const rows = await rowsOf(streams);
    for (const [index, id] of streams.entries()) {
      expect(rows.filter((row) => row.stream_id === id).map((row) => row.version)).toEqual(wrong.has(index) ? [1, 2] : [1, 2, 3]);
    }
    const after = stats();
    expect(after.groups).toBeGreaterThan(before.groups);
    expect(after.fallbacks).toBe(before.fallbacks); // settled in the statement, not by writing one by one
  });

  it('a race inside a group (another connection takes a stream version): that append alone loses, the rest is written', async () => {
    const streams = Array.from({ length: CLIENTS }, streamId);
    await Promise.all(streams.map((id) => t.store.append(id, ticks(1), { expectedVersion: NO_STREAM })));
    const raced = streams[CLIENTS - 1]; // last: queued behind the first statements, so in a group
    const other = new pg.Client({ connectionString: t.database.url });
    await other.connect();
    try {
      // Another writer takes version 2 of `raced` and holds its transaction open.
      await other.query('BEGIN');
      const eventId = randomUUID();
      await other.query(
        `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
         VALUES ($1, 2, 'test.GroupTicked', 1, $2::uuid, '{"n":2}', jsonb_build_object('eventId', $3::text))`,
        [raced, eventId, eventId],
      );
      const before = stats();
      const settled = Promise.allSettled(streams.map((id) => t.store.append(id, ticks(1, 1), { expectedVersion: 1 })));
      // The group that holds `raced` waits on the other writer's uncommitted version 2 (a wait on that
      // transaction, not a passing lock of some commit); then the other writer commits.
      await waitFor(async () => {
        const [{ waiting }] = (await t.dataSource.query(
          `SELECT count(*)::int AS waiting FROM pg_locks JOIN pg_stat_activity USING (pid)
           WHERE datname = current_database() AND locktype = 'transactionid' AND NOT granted`,
        )) as Array<{ waiting: number }>;
        return waiting > 0;
      });
      await other.query('COMMIT');
      const results = await settled;

      for (const [index, result] of results.entries()) {
        if (streams[index] === raced) {
          expect(result.status).toBe('rejected');
          expect((result as PromiseRejectedResult).reason).toBeInstanceOf(WrongExpectedVersionError);
          expect((result as PromiseRejectedResult).reason).toMatchObject({ streamId: raced, expectedVersion: 1, actualVersion: 2 });
        } else {
          expect(result.status).toBe('fulfilled');
        }
      }
      const rows = await rowsOf(streams);
      for (const id of streams) expect(rows.filter((row) => row.stream_id === id).map((row) => row.version)).toEqual([1, 2]);
      const after = stats();
      expect(after.fallbacks).toBe(before.fallbacks + 1); // the group was refused as a whole, then written one by one
    } finally {
      await other.query('ROLLBACK').catch(() => undefined);
      await other.end();
    }
  });

  it('a group whose connection is lost is rejected as a whole with that error (outcome unknown), never reported as written', async () => {
    const streams = Array.from({ length: CLIENTS }, streamId);
    await Promise.all(streams.map((id) => t.store.append(id, ticks(1), { expectedVersion: NO_STREAM })));
    const raced = streams[CLIENTS - 1];
    const other = new pg.Client({ connectionString: t.database.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      const eventId = randomUUID();
      await other.query(
        `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
         VALUES ($1, 2, 'test.GroupTicked', 1, $2::uuid, '{"n":2}', jsonb_build_object('eventId', $3::text))`,
        [raced, eventId, eventId],
      );
      const before = stats();
      const settled = Promise.allSettled(streams.map((id) => t.store.append(id, ticks(1, 1), { expectedVersion: 1 })));
      // The group holding `raced` waits on the other writer; its connection is then terminated (FATAL).
      let pid: number | undefined;
      await waitFor(async () => {
        const [row] = (await t.dataSource.query(
          `SELECT pid FROM pg_locks JOIN pg_stat_activity USING (pid)
           WHERE datname = current_database() AND locktype = 'transactionid' AND NOT granted`,
        )) as Array<{ pid: number }>;
        pid = row?.pid;
        return pid !== undefined;
      });
      await t.dataSource.query('SELECT pg_terminate_backend($1)', [pid]);
      const results = await settled;
      await other.query('ROLLBACK');

      const rejected = results.flatMap((result, index) =>
        result.status === 'rejected' ? [{ index, reason: result.reason as unknown }] : [],
      );
      expect(rejected.map(({ index }) => streams[index])).toContain(raced);
      expect(rejected.length).toBeGreaterThan(1); // the whole group, not only `raced`
      for (const { reason } of rejected) {
        expect(reason).not.toBeInstanceOf(WrongExpectedVersionError);
        expect((reason as QueryFailedError).driverError).toMatchObject({ code: '57P01', severity: 'FATAL' });
      }
      const rows = await rowsOf(streams);
      for (const [index, id] of streams.entries()) {
        const written = results[index].status === 'fulfilled';
        expect(rows.filter((row) => row.stream_id === id).map((row) => row.version)).toEqual(written ? [1, 2] : [1]);
      }
      expect(stats().fallbacks).toBe(before.fallbacks); // not retried one by one: it might have committed
    } finally {
      await other.query('ROLLBACK').catch(() => undefined);
      await other.end();
    }
  });

  it('a duplicate event id in one append of a group fails only that append, and writes nothing of it', async () => {
    const taken = randomUUID();
    const first = streamId();
    await t.store.append(first, ticks(1), { expectedVersion: NO_STREAM, eventIds: [taken] });
    const streams = Array.from({ length: CLIENTS }, streamId);
    const duplicate = CLIENTS - 1;
    const before = stats();

    const results = await Promise.allSettled(
      streams.map((id, index) =>
        t.store.append(id, ticks(3), {
          expectedVersion: NO_STREAM,
          ...(index === duplicate ? { eventIds: [randomUUID(), taken, randomUUID()] } : {}),
        }),
      ),
    );

    for (const [index, result] of results.entries()) {
      if (index === duplicate) {
        expect(result.status).toBe('rejected');
        const reason = (result as PromiseRejectedResult).reason;
        expect(reason).toBeInstanceOf(QueryFailedError);
        expect((reason as QueryFailedError).driverError).toMatchObject({ code: '23505', constraint: 'events_event_id_unique' });
      } else {
        expect(result.status).toBe('fulfilled');
      }
    }
    const rows = await rowsOf(streams);
    for (const [index, id] of streams.entries()) {
      expect(rows.filter((row) => row.stream_id === id).map((row) => row.version)).toEqual(index === duplicate ? [] : [1, 2, 3]);
    }
    expect(stats().fallbacks).toBe(before.fallbacks + 1);
    expect(stats().groups).toBeGreaterThan(before.groups);
  });

  it('a lone append goes at once, alone; a sequential loop is never queued nor grouped', async () => {
    const before = stats();
    const id = streamId();
    await t.store.append(id, ticks(2), { expectedVersion: NO_STREAM });
    expect(stats()).toEqual({ ...before, statements: before.statements + 1, appends: before.appends + 1 });

    for (let version = 2; version < 42; version++) {
      await t.store.append(id, ticks(1, version), { expectedVersion: version });
    }
    const after = stats();
    expect(after.statements - before.statements).toBe(41);
    expect(after.appends - before.appends).toBe(41);
    expect(after.queued).toBe(before.queued);
    expect(after.groups).toBe(before.groups);
    const rows = await rowsOf([id]);
    expect(rows.map((row) => row.version)).toEqual(Array.from({ length: 42 }, (_, index) => index + 1));
    expect(new Set(rows.map((row) => row.transaction_id)).size).toBe(41);
  });

  it('concurrent appends to one stream never share a statement: one wins, the others get the conflict', async () => {
    const id = streamId();
    await t.store.append(id, ticks(1), { expectedVersion: NO_STREAM });
    const others = Array.from({ length: 8 }, streamId);
    const results = await Promise.allSettled([
      ...Array.from({ length: 8 }, () => t.store.append(id, ticks(1, 1), { expectedVersion: 1 })),
      ...others.map((other) => t.store.append(other, ticks(1), { expectedVersion: NO_STREAM })),
    ]);
    const onStream = results.slice(0, 8);
    expect(onStream.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    for (const result of onStream.filter((result) => result.status === 'rejected')) {
      expect((result as PromiseRejectedResult).reason).toMatchObject({ streamId: id, expectedVersion: 1, actualVersion: 2 });
    }
    expect(results.slice(8).every((result) => result.status === 'fulfilled')).toBe(true);
    expect((await rowsOf([id])).map((row) => row.version)).toEqual([1, 2]);
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(10);
  }
}
