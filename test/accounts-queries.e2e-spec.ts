import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Response } from 'supertest';
import { accountsApi, ISO_DATE, expectProblem, invalidFields } from './support/accounts-api.js';
import { type Via, projectionPosition, reflecting } from './support/read-your-writes.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// The account read model: GET /accounts/{id} and GET /accounts (filters, keyset pagination).
// The app exactly as main.ts builds it, on a fresh database of a real PostgreSQL (support/accounts-api.ts).

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const { open, deposit, withdraw, close, getAccount, historyOf } = accountsApi(() => t);

describe('GET /accounts/{id}', () => {
  it('answers the account with an ETag equal to its version', async () => {
    const { id, position } = await open('Grace Hopper', 'USD');
    const response = await getAccount(id, position);

    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.headers.etag).toBe('"1"');
    expect(Object.keys(response.body).sort()).toEqual(
      ['balance', 'currency', 'id', 'openedAt', 'ownerName', 'status', 'updatedAt', 'version'].sort(),
    );
    expect(response.body).toEqual({
      id,
      ownerName: 'Grace Hopper',
      currency: 'USD',
      balance: 0,
      status: 'open',
      version: 1,
      openedAt: expect.stringMatching(ISO_DATE),
      updatedAt: expect.stringMatching(ISO_DATE),
    });
    expect(response.body.updatedAt).toBe(response.body.openedAt);
  });

  it('reflects every command at once: balance, status, version, updatedAt', async () => {
    const { id, position } = await open();
    const opened = (await getAccount(id, position)).body;

    await deposit(id, 700);
    const withdrawn = await withdraw(id, 200);
    const afterWithdrawal = await getAccount(id, withdrawn.body.position, 'header');
    expect(afterWithdrawal.headers.etag).toBe('"3"');
    expect(afterWithdrawal.body).toMatchObject({ balance: 500, status: 'open', version: 3, openedAt: opened.openedAt });
    expect(Date.parse(afterWithdrawal.body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(opened.updatedAt));

    await withdraw(id, 500);
    const closedCommand = await close(id);
    const closed = await getAccount(id, closedCommand.body.position);
    expect(closed.headers.etag).toBe('"5"');
    expect(closed.body).toMatchObject({ balance: 0, status: 'closed', version: 5, openedAt: opened.openedAt });
    const events = await historyOf(id);
    expect(closed.body.updatedAt).toBe(events[4].metadata.occurredAt);
  });
});

describe('GET /accounts (list)', () => {
  const owner = () => `Owner ${randomUUID()}`;

  /** One page, once the account-summary projection has applied the write at `position`. */
  async function list(query: Record<string, string | number>, position: number, via: Via = 'query'): Promise<Response> {
    const response = await reflecting(t.http.get('/accounts').query(query), position, via);
    expect(response.status).toBe(200);
    expect(projectionPosition(response)).toBeGreaterThanOrEqual(position);
    return response;
  }

  async function walk(query: Record<string, string | number>, position: number): Promise<{ ids: string[]; pages: number[] }> {
    const ids: string[] = [];
    const pages: number[] = [];
    let cursor: string | null = null;
    do {
      const response = await list(cursor === null ? query : { ...query, cursor }, position, pages.length % 2 === 0 ? 'header' : 'query');
      ids.push(...response.body.items.map((item: { id: string }) => item.id));
      pages.push(response.body.items.length);
      cursor = response.body.nextCursor;
      expect(pages.length).toBeLessThan(100);
    } while (cursor !== null);
    return { ids, pages };
  }

  it('filters by owner (exact match) and status, newest first', async () => {
    const ada = owner();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await open(ada)).id);
      await open(`${ada} junior`); // a neighbour that an exact match must not include
    }
    await close(ids[1]);
    const { position } = (await close(ids[3])).body;

    const all = await list({ owner: ada }, position);
    expect(all.headers.etag).toBeUndefined();
    expect(all.body.items.map((item: { id: string }) => item.id)).toEqual([...ids].reverse());
    expect(all.body.nextCursor).toBeNull();
    expect(all.body.items[0]).toEqual({
      id: ids[4],
      ownerName: ada,
      currency: 'EUR',
      balance: 0,
      status: 'open',
      version: 1,
      openedAt: expect.stringMatching(ISO_DATE),
      updatedAt: expect.stringMatching(ISO_DATE),
    });

    const closed = await list({ owner: ada, status: 'closed' }, position, 'header');
    expect(closed.body.items.map((item: { id: string }) => item.id)).toEqual([ids[3], ids[1]]);
    expect(closed.body.items.every((item: { status: string }) => item.status === 'closed')).toBe(true);

    const open_ = await list({ owner: ada, status: 'open' }, position);
    expect(open_.body.items.map((item: { id: string }) => item.id)).toEqual([ids[4], ids[2], ids[0]]);

    expect((await list({ owner: owner() }, position)).body).toEqual({ items: [], nextCursor: null });
    // Exact match: SQL wildcards in the filter are plain characters.
    expect((await list({ owner: `${ada.slice(0, 10)}%` }, position, 'header')).body.items).toEqual([]);
    expect((await list({ owner: `${ada.slice(0, -1)}_` }, position)).body.items).toEqual([]);
  });

  it('without filters lists every account, newest first', async () => {
    const newest = await open(owner());
    const response = await list({ limit: 100 }, newest.position);
    expect(response.body.items[0].id).toBe(newest.id);
    const opened = response.body.items.map((item: { openedAt: string }) => Date.parse(item.openedAt));
    expect(opened).toEqual([...opened].sort((a, b) => b - a));
  });

  it('walks every page with the cursor, without duplicates or gaps, whatever the page size', async () => {
    const bob = owner();
    const ids: string[] = [];
    for (let i = 0; i < 23; i++) {
      ids.push((await open(bob)).id);
      if (i % 4 === 0) await open(owner()); // interleaved accounts of other owners
    }
    const { position } = await open(owner()); // the last write; every page reflects it
    const newestFirst = [...ids].reverse();

    const firstPage = await list({ owner: bob }, position);
    expect(firstPage.body.items).toHaveLength(20); // the default limit
    expect(typeof firstPage.body.nextCursor).toBe('string');

    for (const limit of [1, 5, 7, 22, 23, 100]) {
      const { ids: walked, pages } = await walk({ owner: bob, limit }, position);
      expect(walked).toEqual(newestFirst);
      expect(pages.slice(0, -1).every((size) => size === limit)).toBe(true);
    }
    // A page size that divides the total: the last full page still says whether more follows.
    const exact = await walk({ owner: bob, limit: 23 }, position);
    expect(exact.pages).toEqual([23]);
  });

  it('combines the cursor with the status filter', async () => {
    const carol = owner();
    const ids: string[] = [];
    for (let i = 0; i < 9; i++) ids.push((await open(carol)).id);
    let position = 0;
    for (const index of [0, 2, 4, 6, 8]) position = (await close(ids[index])).body.position;

    const { ids: closed } = await walk({ owner: carol, status: 'closed', limit: 2 }, position);
    expect(closed).toEqual([ids[8], ids[6], ids[4], ids[2], ids[0]]);
    const { ids: open_ } = await walk({ owner: carol, status: 'open', limit: 3 }, position);
    expect(open_).toEqual([ids[7], ids[5], ids[3], ids[1]]);
  });

  it('keeps pages stable while accounts are opened between them', async () => {
    const dan = owner();
    const ids: string[] = [];
    let position = 0;
    for (let i = 0; i < 6; i++) {
      const opened = await open(dan);
      ids.push(opened.id);
      position = opened.position;
    }

    const first = await list({ owner: dan, limit: 3 }, position);
    const late = await open(dan);
    // The second page reflects the late account too, yet the cursor keeps it out of the walk.
    const second = await list({ owner: dan, limit: 3, cursor: first.body.nextCursor }, late.position, 'header');

    const seen = [...first.body.items, ...second.body.items].map((item: { id: string }) => item.id);
    expect(seen).toEqual([...ids].reverse());
    expect(seen).not.toContain(late.id);
    expect(second.body.nextCursor).toBeNull();
    expect((await list({ owner: dan, limit: 1 }, late.position)).body.items[0].id).toBe(late.id);
  });

  it.each([
    ['limit=0', { limit: '0' }, 'limit'],
    ['limit=101', { limit: '101' }, 'limit'],
    ['limit=x', { limit: 'x' }, 'limit'],
    ['limit=1.5', { limit: '1.5' }, 'limit'],
    ['limit=-1', { limit: '-1' }, 'limit'],
    ['empty limit', { limit: '' }, 'limit'],
    ['status=OPEN', { status: 'OPEN' }, 'status'],
    ['status=frozen', { status: 'frozen' }, 'status'],
    ['empty owner', { owner: '' }, 'owner'],
    ['an owner of 101 characters', { owner: 'x'.repeat(101) }, 'owner'],
    ['an unknown parameter', { sort: 'asc' }, 'sort'],
  ])('refuses %s with 400 naming the parameter', async (_label, query, field) => {
    expect(invalidFields(await t.http.get('/accounts').query(query))).toEqual([field]);
  });

  it('refuses a repeated parameter with 400, never 500', async () => {
    expect(invalidFields(await t.http.get('/accounts?limit=1&limit=2'))).toEqual(['limit']);
    expect(invalidFields(await t.http.get('/accounts?owner=a&owner=b'))).toEqual(['owner']);
  });

  it('accepts limit=1 and limit=100', async () => {
    await open(owner());
    const { position } = await open(owner());
    expect((await list({ limit: 1 }, position)).body.items).toHaveLength(1);
    expect((await list({ limit: 100 }, position, 'header')).body.items.length).toBeGreaterThan(1);
  });

  it.each([
    ['garbage', 'garbage!!'],
    ['not JSON', Buffer.from('hello').toString('base64url')],
    ['JSON of the wrong shape', Buffer.from('{"before":3}').toString('base64url')],
    ['a negative position', Buffer.from('{"after":-1}').toString('base64url')],
    ['a fractional position', Buffer.from('{"after":1.5}').toString('base64url')],
    ['a position as a string', Buffer.from('{"after":"3"}').toString('base64url')],
    ['an unsafe integer', Buffer.from(`{"after":${2 ** 60}}`).toString('base64url')],
    ['JSON null', Buffer.from('null').toString('base64url')],
  ])('refuses a cursor that is %s with 400 INVALID_CURSOR', async (_label, cursor) => {
    expectProblem(await t.http.get('/accounts').query({ cursor }), 400, 'INVALID_CURSOR');
  });
});
