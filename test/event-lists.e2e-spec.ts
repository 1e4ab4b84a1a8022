import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AccountOpened, MoneyDeposited } from '../src/accounts/account.events.js';
import { EventStore, NO_STREAM } from '../src/event-sourcing/index.js';
import { LedgerClient } from './support/ledger-client.js';
import { expectProblemAnswer, expectValidationProblem } from './support/problem.js';
import { type SseConnection, connectSse, portOf } from './support/sse-client.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// The per-stream event lists, GET /accounts/{id}/events and GET /transfers/{id}/events: paginated like
// the other lists (limit 1–1000, 100 by default, an opaque cursor to the next page), and every event
// list of the API — those two, GET /events and the payloads of /events/live — shows an event in one
// shape, with its streamId. Expected pages are computed from the events table read with SQL.

let t: TestApp;
let ledger: LedgerClient;
let store: EventStore;
const connections: SseConnection[] = [];
beforeAll(async () => {
  t = await startTestApp();
  await t.app.listen(0, '127.0.0.1');
  ledger = new LedgerClient(t);
  store = t.app.get(EventStore);
});
afterAll(async () => {
  for (const connection of connections) connection.close();
  await t?.close();
});

const EVENT_KEYS = ['data', 'metadata', 'position', 'recordedAt', 'schemaVersion', 'streamId', 'type', 'version'];

/** An account stream of `deposits` deposits after its opening, appended in one go (fast: no HTTP round trip each). */
async function accountWithDeposits(deposits: number): Promise<string> {
  const id = randomUUID();
  const events: object[] = [new AccountOpened({ accountId: id, ownerName: 'Pages', currency: 'EUR' })];
  for (let i = 1; i <= deposits; i++) events.push(new MoneyDeposited({ accountId: id, amount: 1, balanceAfter: i }));
  await store.append(`account-${id}`, events, { expectedVersion: NO_STREAM });
  return id;
}

/** The stream's (version, position) pairs in version order, from SQL. */
async function streamRows(streamId: string): Promise<Array<{ version: number; position: number }>> {
  const rows = (await t.dataSource.query('SELECT version, position FROM events WHERE stream_id = $1 ORDER BY version', [
    streamId,
  ])) as Array<{
    version: number;
    position: string;
  }>;
  return rows.map((row) => ({ version: row.version, position: Number(row.position) }));
}

/** Every page of a per-stream event list, walked with nextCursor. */
async function walk(path: string, limit?: number): Promise<Array<{ items: Array<Record<string, any>>; nextCursor: string | null }>> {
  const pages: Array<{ items: Array<Record<string, any>>; nextCursor: string | null }> = [];
  let cursor: string | undefined;
  for (let page = 0; page < 10_000; page++) {
    const response = await t.http.get(path).query({ ...(limit === undefined ? {} : { limit }), ...(cursor ? { cursor } : {}) });
    expect({ path, status: response.status }).toEqual({ path, status: 200 });
    expect(Object.keys(response.body).sort()).toEqual(['items', 'nextCursor']);
    pages.push(response.body);
    cursor = response.body.nextCursor ?? undefined;
    if (!cursor) return pages;
  }
  throw new Error(`${path} never reached its last page`);
}

describe('GET /accounts/{id}/events is paginated', () => {
  it('a stream of 2,050 events: pages of 100 by default, in version order, none missing or repeated', async () => {
    const id = await accountWithDeposits(2049);
    const pages = await walk(`/accounts/${id}/events`);
    expect(pages.map((page) => page.items.length)).toEqual([...Array(20).fill(100), 50]);
    expect(pages.slice(0, -1).every((page) => typeof page.nextCursor === 'string')).toBe(true);
    expect(pages.at(-1)!.nextCursor).toBeNull();
    const items = pages.flatMap((page) => page.items);
    expect(items.map((event) => ({ version: event.version, position: event.position }))).toEqual(await streamRows(`account-${id}`));
  });

  it('limit=1000 is the most a page holds; the walk with it gives the same stream', async () => {
    const id = await accountWithDeposits(2049);
    const pages = await walk(`/accounts/${id}/events`, 1000);
    expect(pages.map((page) => page.items.length)).toEqual([1000, 1000, 50]);
    expect(pages.flatMap((page) => page.items).map((event) => event.version)).toEqual(
      (await streamRows(`account-${id}`)).map((row) => row.version),
    );
  });

  it('a page that ends exactly at the end of the stream has no next cursor', async () => {
    const id = await accountWithDeposits(9);
    const pages = await walk(`/accounts/${id}/events`, 5);
    expect(pages.map((page) => page.items.map((event) => event.version))).toEqual([
      [1, 2, 3, 4, 5],
      [6, 7, 8, 9, 10],
    ]);
    expect(pages[1].nextCursor).toBeNull();
  });

  it('events appended after a page was read come on the following pages (the cursor is a keyset, not an offset)', async () => {
    const account = await ledger.openWith(100);
    const first = (await t.http.get(`/accounts/${account.id}/events`).query({ limit: 1 }).expect(200)).body;
    expect(first.items.map((event: any) => event.version)).toEqual([1]);
    await ledger.deposit(account.id, 5);
    await ledger.deposit(account.id, 6);
    const versions: number[] = [];
    let cursor: string | null = first.nextCursor;
    while (cursor) {
      const page = (await t.http.get(`/accounts/${account.id}/events`).query({ limit: 1, cursor }).expect(200)).body;
      versions.push(...page.items.map((event: any) => event.version));
      cursor = page.nextCursor;
    }
    expect(versions).toEqual([2, 3, 4]);
  });

  it('limit over 1000, 0, negative or not an integer: 400 VALIDATION_FAILED naming limit', async () => {
    const account = await ledger.open();
    for (const limit of ['1001', '0', '-1', '1.5', 'ten', '1e2']) {
      const errors = expectValidationProblem(await t.http.get(`/accounts/${account.id}/events`).query({ limit }));
      expect({ limit, fields: errors.map((error) => error.field) }).toEqual({ limit, fields: ['limit'] });
    }
  });

  it('a cursor that is not one of its own: 400 INVALID_CURSOR (problem+json), never a 500', async () => {
    const account = await ledger.openWith(10);
    const deposited = await ledger.deposit(account.id, 1);
    const transactions = await t.http
      .get(`/accounts/${account.id}/transactions`)
      .query({ limit: 1, minPosition: deposited.body.position })
      .expect(200);
    const foreign = transactions.body.nextCursor; // a cursor of the account's transactions
    expect(foreign).toEqual(expect.any(String));
    const transferCursor = Buffer.from(JSON.stringify({ afterPosition: 1 })).toString('base64url');
    const huge = Buffer.from(JSON.stringify({ afterVersion: 2 ** 53 })).toString('base64url');
    for (const cursor of ['garbage', '!!!', Buffer.from('null').toString('base64url'), foreign, transferCursor, huge]) {
      expectProblemAnswer(await t.http.get(`/accounts/${account.id}/events`).query({ cursor }), 400, 'INVALID_CURSOR');
    }
  });

  it('a cursor past the end of the stream: an empty last page; for an unknown account: 404 ACCOUNT_NOT_FOUND', async () => {
    const account = await ledger.openWith(10);
    const pastEnd = Buffer.from(JSON.stringify({ afterVersion: 50 })).toString('base64url');
    expect((await t.http.get(`/accounts/${account.id}/events`).query({ cursor: pastEnd }).expect(200)).body).toEqual({
      items: [],
      nextCursor: null,
    });
    expectProblemAnswer(await t.http.get(`/accounts/${randomUUID()}/events`).query({ cursor: pastEnd }), 404, 'ACCOUNT_NOT_FOUND');
    expectProblemAnswer(await t.http.get(`/accounts/${randomUUID()}/events`), 404, 'ACCOUNT_NOT_FOUND');
  });
});

describe('GET /transfers/{id}/events is paginated', () => {
  it('the chain page by page (limit 1, 2, 3 and the default): in log order, none missing or repeated, each with its streamId', async () => {
    const source = await ledger.openWith(1000);
    const target = await ledger.open();
    const accepted = await ledger.transfer(source.id, target.id, 10);
    await ledger.settled(accepted.id);
    const [whole] = await walk(`/transfers/${accepted.id}/events`);
    expect(whole.nextCursor).toBeNull();
    expect(whole.items.map((event) => [event.streamId, event.type])).toEqual([
      [`transfer-${accepted.id}`, 'transfers.TransferRequested'],
      [`account-${source.id}`, 'accounts.TransferDebited'],
      [`transfer-${accepted.id}`, 'transfers.SourceDebited'],
      [`account-${target.id}`, 'accounts.TransferCredited'],
      [`account-${source.id}`, 'accounts.TransferSettled'],
      [`transfer-${accepted.id}`, 'transfers.TargetCredited'],
      [`transfer-${accepted.id}`, 'transfers.TransferCompleted'],
    ]);
    const positions = whole.items.map((event) => event.position);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    for (const limit of [1, 2, 3]) {
      const pages = await walk(`/transfers/${accepted.id}/events`, limit);
      expect({ limit, sizes: pages.map((page) => page.items.length) }).toEqual({
        limit,
        sizes: [...Array(Math.floor(7 / limit)).fill(limit), ...(7 % limit ? [7 % limit] : [])],
      });
      expect({ limit, items: pages.flatMap((page) => page.items) }).toEqual({ limit, items: whole.items });
    }
  });

  it('limit over 1000 or below 1: 400 VALIDATION_FAILED; a foreign or forged cursor: 400 INVALID_CURSOR', async () => {
    const source = await ledger.openWith(1000);
    const target = await ledger.open();
    const accepted = await ledger.transfer(source.id, target.id, 10);
    await ledger.settled(accepted.id);
    for (const limit of ['1001', '0']) {
      expectValidationProblem(await t.http.get(`/transfers/${accepted.id}/events`).query({ limit }));
    }
    expect((await t.http.get(`/transfers/${accepted.id}/events`).query({ limit: 1000 })).status).toBe(200);
    const accountCursor = Buffer.from(JSON.stringify({ afterVersion: 1 })).toString('base64url');
    for (const cursor of ['garbage', accountCursor, Buffer.from(JSON.stringify({ afterPosition: -1 })).toString('base64url')]) {
      expectProblemAnswer(await t.http.get(`/transfers/${accepted.id}/events`).query({ cursor }), 400, 'INVALID_CURSOR');
    }
  });

  it("a caller that reuses its correlation id after the transfer: the chain stays the transfer's own events", async () => {
    const correlationId = `session-${randomUUID()}`;
    const source = await ledger.openWith(1000);
    const target = await ledger.open();
    const accepted = await ledger.transfer(source.id, target.id, 10, { headers: { 'X-Correlation-Id': correlationId } });
    await ledger.settled(accepted.id);
    const busy = randomUUID();
    await store.append(`account-${busy}`, [new AccountOpened({ accountId: busy, ownerName: 'Later', currency: 'EUR' })], {
      expectedVersion: NO_STREAM,
      metadata: { correlationId, causationId: randomUUID(), actor: 'anonymous' },
    });
    const pages = await walk(`/transfers/${accepted.id}/events`, 3);
    const items = pages.flatMap((page) => page.items);
    expect(items).toHaveLength(7);
    expect(items.every((event) => event.data.transferId === accepted.id)).toBe(true);
  });
});

describe('every event list shows an event in one shape, with its streamId', () => {
  it('account events, transfer events, GET /events and /events/live show the same event identically', async () => {
    const source = await ledger.openWith(1000);
    const target = await ledger.open();
    const accepted = await ledger.transfer(source.id, target.id, 10);
    await ledger.settled(accepted.id);

    const accountItems = (await t.http.get(`/accounts/${source.id}/events`).expect(200)).body.items as Array<Record<string, any>>;
    const transferItems = (await t.http.get(`/transfers/${accepted.id}/events`).expect(200)).body.items as Array<Record<string, any>>;
    const feedItems = (
      await t.http
        .get('/events')
        .query({ stream: `account-${source.id}` })
        .expect(200)
    ).body.items as Array<Record<string, any>>;
    const live = await connectSse(portOf(t.app), { lastEventId: String(accountItems[0].position) });
    connections.push(live);
    await live.waitForId(accountItems.at(-1)!.position);
    const liveItems = live.feedMessages().map((message) => message.data);

    for (const [list, items] of Object.entries({ accountItems, transferItems, feedItems, liveItems })) {
      expect({ list, empty: items.length === 0 }).toEqual({ list, empty: false });
      for (const item of items) expect({ list, keys: Object.keys(item).sort() }).toEqual({ list, keys: EVENT_KEYS });
    }
    expect(accountItems.every((event) => event.streamId === `account-${source.id}`)).toBe(true);
    expect(feedItems).toEqual(accountItems);
    // the debit as the account's list, the transfer's chain and the live feed show it
    const debit = accountItems.find((event) => event.type === 'accounts.TransferDebited');
    expect(transferItems.find((event) => event.type === 'accounts.TransferDebited')).toEqual(debit);
    expect(liveItems.find((event) => event.position === debit!.position)).toEqual(debit);
  });
});

describe('GET /accounts/{id}/transfers', () => {
  it('404 ACCOUNT_NOT_FOUND for an unknown account, as its siblings /transactions and /events answer', async () => {
    const unknown = randomUUID();
    expectProblemAnswer(await t.http.get(`/accounts/${unknown}/transfers`), 404, 'ACCOUNT_NOT_FOUND');
    expectProblemAnswer(await t.http.get(`/accounts/${unknown}/transactions`), 404, 'ACCOUNT_NOT_FOUND');
    expectProblemAnswer(await t.http.get(`/accounts/${unknown}/events`), 404, 'ACCOUNT_NOT_FOUND');
    const cursor = Buffer.from(JSON.stringify({ before: 10 })).toString('base64url');
    expectProblemAnswer(await t.http.get(`/accounts/${unknown}/transfers`).query({ cursor }), 404, 'ACCOUNT_NOT_FOUND');
  });

  it('an account without transfers is still a 200 with an empty list', async () => {
    const account = await ledger.open();
    const response = await t.http.get(`/accounts/${account.id}/transfers`).query({ minPosition: account.position });
    expect({ status: response.status, body: response.body }).toEqual({ status: 200, body: { items: [], nextCursor: null } });
  });
});
