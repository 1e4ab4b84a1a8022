import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { EventStore } from '../src/event-sourcing/index.js';
import { type ApiEvent, walkFeed } from './support/history-fold.js';
import { LedgerAccount, seedLedger } from './support/ledger-writers.js';
import { expectProblemAnswer, expectValidationProblem } from './support/problem.js';
import { eventually, gate, rows } from './support/projection-fixtures.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// GET /events: the global log in commit-safe order, keyset paginated with `next`, filtered by type
// and stream. The log is compared with the events table read directly (SQL), never with the
// application's own reading code.

let t: TestApp;
let store: EventStore;
beforeAll(async () => {
  t = await startTestApp();
  store = t.app.get(EventStore);
});
/**
 * Gates of transactions a test holds open: opened after the test even when it fails. An open
 * transaction would keep `t` from closing and hold every commit-safe reader of the server (other
 * test files') back until the end of the run.
 */
const heldOpen: Array<ReturnType<typeof gate>> = [];
afterEach(() => {
  for (const held of heldOpen.splice(0)) held.open();
});
afterAll(() => t?.close());

interface LogRow {
  position: number;
  streamId: string;
  version: number;
  type: string;
  data: Record<string, any>;
  metadata: Record<string, any>;
  recordedAt: string;
}

/** The whole events table in commit order (transaction id, position), straight from SQL. */
async function logInCommitOrder(where = 'true', parameters: unknown[] = []): Promise<LogRow[]> {
  const found = await rows<Record<string, any>>(
    t.dataSource,
    `SELECT position, stream_id, version, type, schema_version, data, metadata, recorded_at FROM events WHERE ${where}
     ORDER BY transaction_id, position`,
    parameters,
  );
  return found.map((row) => ({
    position: Number(row.position),
    streamId: row.stream_id,
    version: row.version,
    type: row.type,
    data: row.data,
    metadata: row.metadata,
    recordedAt: new Date(row.recorded_at).toISOString(),
  }));
}

const positions = (events: ReadonlyArray<{ position: number }>) => events.map((event) => event.position);

/** Walks the feed until it has caught up with the table (a transaction of another database can hold it back briefly). */
async function walkUntil(expected: readonly LogRow[], query: Parameters<typeof walkFeed>[1] = {}) {
  return eventually(`GET /events ${JSON.stringify(query)} to show ${expected.length} events`, async () => {
    const walk = await walkFeed(t, query);
    return walk.items.length >= expected.length ? walk : undefined;
  });
}

async function http(path: string, body?: object): Promise<Record<string, any>> {
  const response = await t.http.post(path).send(body);
  if (response.status >= 300) throw new Error(`POST ${path} answered ${response.status}: ${JSON.stringify(response.body)}`);
  return response.body;
}

describe('GET /events', () => {
  beforeAll(async () => {
    // A mixed log: HTTP commands (one event per transaction) and direct multi-event transactions.
    for (let index = 0; index < 4; index++) {
      const { id } = await http('/accounts', { ownerName: `Feed ${index}`, currency: index % 2 ? 'USD' : 'EUR' });
      await http(`/accounts/${id}/deposits`, { amount: 100 + index, reference: `ref ${index}` });
      if (index % 2 === 0) {
        await http(`/accounts/${id}/withdrawals`, { amount: 100 + index });
        await http(`/accounts/${id}/close`);
      }
    }
    await seedLedger(store, { accounts: 6, movements: 4, perTransaction: 2, owner: 'Seeded' });
  });

  it('keyset paging with `next` walks the whole log exactly once, in commit order, each item as stored', async () => {
    const log = await logInCommitOrder();
    expect(log.length).toBeGreaterThan(40);
    const walk = await walkUntil(log, { limit: 7 });
    expect(positions(walk.items)).toEqual(positions(log));
    expect(new Set(positions(walk.items)).size).toBe(log.length);
    // Items are the stored events in their current schema (every type here is at its current version).
    expect(
      walk.items.map(({ position, streamId, version, type, data, metadata, recordedAt }) => ({
        position,
        streamId,
        version,
        type,
        data,
        metadata,
        recordedAt,
      })),
    ).toEqual(log);
    for (const item of walk.items)
      expect(item.schemaVersion).toBe(['accounts.MoneyDeposited', 'accounts.MoneyWithdrawn'].includes(item.type) ? 2 : 1);

    // Pages hold at most `limit` items, and usually exactly that many: a page may stop short where a
    // transaction still running anywhere on the server (e.g. a parallel test file's, since the
    // commit-safe horizon is server-wide) could yet commit an earlier position. `next` is the last
    // item's position; the empty page gives back its `after`.
    const pages = walk.pages;
    for (const page of pages.slice(0, -1)) expect(page.items.length).toBeGreaterThanOrEqual(1);
    for (const page of pages) expect(page.items.length).toBeLessThanOrEqual(7);
    expect(pages.length).toBeGreaterThanOrEqual(Math.ceil(log.length / 7) + 1);
    for (const page of pages.slice(0, -1)) expect(page.next).toBe(page.items.at(-1)!.position);
    expect(pages.at(-1)).toEqual({ after: log.at(-1)!.position, items: [], next: log.at(-1)!.position });
    // Each page starts right after the previous one's `next`.
    for (let index = 1; index < pages.length; index++) expect(pages[index].after).toBe(pages[index - 1].next);

    // One big page and the default page size agree with the walk.
    const all = await t.http.get('/events').query({ limit: 1000 });
    expect(positions(all.body.items)).toEqual(positions(log));
    expect(all.body.next).toBe(log.at(-1)!.position);
    const defaults = await t.http.get('/events');
    expect(positions(defaults.body.items)).toEqual(positions(log).slice(0, 100));
    expect((await t.http.get('/events').query({ after: 0, limit: 3 })).body.items.map((item: ApiEvent) => item.position)).toEqual(
      positions(log).slice(0, 3),
    );

    // Starting after any event returns exactly the events that follow it in commit order.
    for (const index of [0, 5, 17, log.length - 2]) {
      const page = await t.http.get('/events').query({ after: log[index].position, limit: 1000 });
      expect(positions(page.body.items)).toEqual(positions(log.slice(index + 1)));
    }
  });

  it('never skips an event whose transaction commits late: later commits are held back until it does', async () => {
    const start = (await walkUntil(await logInCommitOrder())).pages.at(-1)!.next;

    // "late": appends first (smaller position), commits after the HTTP writes below.
    const late = new LedgerAccount('Late Writer');
    const lateHeld = gate();
    const lateStarted = gate();
    heldOpen.push(lateHeld);
    let latePositions: number[] = [];
    const lateDone = store.transaction(async (tx) => {
      latePositions = await late.write(tx, [500, -20]);
      lateStarted.open();
      await lateHeld.promise;
    });
    await lateStarted.promise;

    // "early": takes its transaction id now, appends (larger positions) after the HTTP writes.
    const early = new LedgerAccount('Early Xid Writer');
    const earlyHeld = gate();
    const earlyStarted = gate();
    const earlyCommit = gate();
    heldOpen.push(earlyHeld, earlyCommit);
    let earlyPositions: number[] = [];
    const earlyDone = store.transaction(async (tx) => {
      await tx.manager.query('SELECT pg_current_xact_id()');
      earlyStarted.open();
      await earlyHeld.promise;
      earlyPositions = await early.write(tx, [70]);
      await earlyCommit.promise;
    });
    await earlyStarted.promise;

    const committed: number[] = [];
    const { id, position } = await http('/accounts', { ownerName: 'Committed Meanwhile', currency: 'EUR' });
    committed.push(position);
    for (const amount of [1, 2, 3]) committed.push((await http(`/accounts/${id}/deposits`, { amount })).position);
    expect(Math.min(...committed)).toBeGreaterThan(Math.max(...latePositions)); // a position reader would skip the late ones

    // The HTTP events are committed (the store reads them), yet the feed shows none of them…
    expect((await t.http.get(`/accounts/${id}/events`)).body.items).toHaveLength(4);
    const held = await t.http.get('/events').query({ after: start });
    expect({ status: held.status, items: held.body.items, next: held.body.next }).toEqual({ status: 200, items: [], next: start });

    // …until the late transaction commits; the early-xid one still holds back the later transactions.
    earlyHeld.open();
    await eventually('the early-xid writer to append', async () => (earlyPositions.length > 0 ? true : undefined));
    lateHeld.open();
    await lateDone;
    const afterLate = await eventually('the late events to show', async () => {
      const page = await t.http.get('/events').query({ after: start });
      return page.body.items.length > 0 ? page.body : undefined;
    });
    expect(positions(afterLate.items)).toEqual(latePositions);
    expect((await t.http.get('/events').query({ after: afterLate.next })).body.items).toEqual([]);
    earlyCommit.open();
    await earlyDone;

    // A reader that paged from `start` gets everything exactly once: commit-safe order is
    // (transaction id, position), so the early-xid events come before the HTTP ones although
    // their positions are larger.
    const expected = [...latePositions, ...earlyPositions, ...committed];
    const walk = await eventually('every held event to show', async () => {
      const result = await walkFeed(t, { after: start, limit: 2 });
      return result.items.length >= expected.length ? result : undefined;
    });
    expect(positions(walk.items)).toEqual(expected);
    expect(positions(await logInCommitOrder('position > $1', [start]))).toEqual(expected);
    expect(Math.min(...earlyPositions)).toBeGreaterThan(Math.max(...committed));
  });

  it('filters by type (a comma list, spaces allowed, or repeated) and by stream, alone and together, paged with `next`', async () => {
    const log = await logInCommitOrder();
    await walkUntil(log);
    const deposits = log.filter((row) => row.type === 'accounts.MoneyDeposited');
    expect(deposits.length).toBeGreaterThan(5);
    const deposited = await walkFeed(t, { type: 'accounts.MoneyDeposited', limit: 4 });
    expect(positions(deposited.items)).toEqual(positions(deposits));
    expect(deposited.items.every((item) => item.type === 'accounts.MoneyDeposited')).toBe(true);

    const closing = log.filter((row) => ['accounts.MoneyWithdrawn', 'accounts.AccountClosed'].includes(row.type));
    expect(positions((await walkFeed(t, { type: 'accounts.MoneyWithdrawn, accounts.AccountClosed', limit: 3 })).items)).toEqual(
      positions(closing),
    );
    const repeated = await t.http.get('/events?type=accounts.MoneyWithdrawn&type=accounts.AccountClosed&limit=1000');
    expect(positions(repeated.body.items)).toEqual(positions(closing));

    const streamId = log.find((row) => row.type === 'accounts.AccountClosed')!.streamId;
    const stream = log.filter((row) => row.streamId === streamId);
    const streamWalk = await walkFeed(t, { stream: streamId, limit: 1 });
    expect(positions(streamWalk.items)).toEqual(positions(stream));
    expect(streamWalk.items.map((item) => item.version)).toEqual(stream.map((_, index) => index + 1));

    const both = await walkFeed(t, { stream: streamId, type: 'accounts.MoneyDeposited,accounts.AccountClosed', limit: 1 });
    expect(positions(both.items)).toEqual(
      positions(stream.filter((row) => ['accounts.MoneyDeposited', 'accounts.AccountClosed'].includes(row.type))),
    );

    // `after` may be any event's position, even one the filter would not return.
    const fromMiddle = await t.http.get('/events').query({ type: 'accounts.MoneyDeposited', after: log[10].position, limit: 1000 });
    expect(positions(fromMiddle.body.items)).toEqual(positions(log.slice(11).filter((row) => row.type === 'accounts.MoneyDeposited')));

    // Nothing matches: an empty page whose `next` is the `after` given.
    for (const query of [
      { type: 'legacy.Unheard' },
      { stream: 'account-00000000-0000-0000-0000-000000000000' },
      { stream: streamId, type: 'transfers.TransferRequested' },
    ]) {
      const none = await t.http.get('/events').query({ ...query, after: log[3].position });
      expect({ query, status: none.status, body: none.body }).toEqual({ query, status: 200, body: { items: [], next: log[3].position } });
    }
  });

  it("an `after` that is no event's position is 400 UNKNOWN_POSITION naming the field", async () => {
    const [{ max }] = await rows<{ max: string }>(t.dataSource, 'SELECT max(position)::text AS max FROM events');
    for (const after of [Number(max) + 1, Number(max) + 1_000_000, Number.MAX_SAFE_INTEGER]) {
      const body = expectProblemAnswer(await t.http.get('/events').query({ after }), 400, 'UNKNOWN_POSITION');
      expect({ after, errors: body.errors }).toEqual({ after, errors: [{ field: 'after', messages: [expect.any(String)] }] });
    }
  });

  it.each<[string, string]>([
    ['after=-1', 'after=-1'],
    ['after=abc', 'after=abc'],
    ['after=1.5', 'after=1.5'],
    ['after above MAX_SAFE_INTEGER', `after=${Number.MAX_SAFE_INTEGER + 2}`],
    ['limit=0', 'limit=0'],
    ['limit=1001', 'limit=1001'],
    ['limit=2.5', 'limit=2.5'],
    ['limit=ten', 'limit=ten'],
    ['an empty stream', 'stream='],
    ['a stream of 256 characters', `stream=${'s'.repeat(256)}`],
    ['51 types', `type=${Array.from({ length: 51 }, (_, index) => `t.T${index}`).join(',')}`],
    ['a type of 256 characters', `type=${'t'.repeat(256)}`],
    ['an unknown parameter', 'cursor=abc'],
  ])('400 VALIDATION_FAILED for %s', async (_name, query) => {
    expectValidationProblem(await t.http.get(`/events?${query}`));
  });
});
