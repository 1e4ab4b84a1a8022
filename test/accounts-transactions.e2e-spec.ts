import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Response } from 'supertest';
import { accountsApi, ISO_DATE, expectProblem, invalidFields } from './support/accounts-api.js';
import { type Via, projectionPosition, reflecting } from './support/read-your-writes.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// GET /accounts/{id}/transactions: the account's movements read model.
// The app exactly as main.ts builds it, on a fresh database of a real PostgreSQL (support/accounts-api.ts).

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const { open, deposit, withdraw, close, openWith, historyOf } = accountsApi(() => t);

describe('GET /accounts/{id}/transactions', () => {
  async function movements(
    id: string,
    position: number,
    query: Record<string, string | number> = {},
    via: Via = 'query',
  ): Promise<Response> {
    const response = await reflecting(t.http.get(`/accounts/${id}/transactions`).query(query), position, via);
    expect(response.status).toBe(200);
    expect(projectionPosition(response)).toBeGreaterThanOrEqual(position);
    return response;
  }

  async function walk(id: string, position: number, limit: number): Promise<{ positions: number[]; pages: number[] }> {
    const positions: number[] = [];
    const pages: number[] = [];
    let cursor: string | null = null;
    do {
      const query: Record<string, string | number> = cursor === null ? { limit } : { limit, cursor };
      const response = await movements(id, position, query, pages.length % 2 === 0 ? 'query' : 'header');
      positions.push(...response.body.items.map((item: { position: number }) => item.position));
      pages.push(response.body.items.length);
      cursor = response.body.nextCursor;
      expect(pages.length).toBeLessThan(100);
    } while (cursor !== null);
    return { positions, pages };
  }

  it('lists deposits and withdrawals newest first: type, amount, balanceAfter, occurredAt, position, transferId null', async () => {
    const { id } = await open();
    const commands = [await deposit(id, 1000), await withdraw(id, 300), await deposit(id, 50), await withdraw(id, 750)];
    const closed = await close(id);

    // The close is no movement, yet its position is one the projection reaches like any other.
    const response = await movements(id, closed.body.position);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.headers.etag).toBeUndefined();
    const events = await historyOf(id);
    const movement = (index: number, type: string, amount: number, balanceAfter: number) => ({
      type,
      amount,
      balanceAfter,
      occurredAt: events[index + 1].metadata.occurredAt,
      position: commands[index].body.position,
      transferId: null,
      reference: null,
    });
    expect(response.body).toEqual({
      items: [
        movement(3, 'withdrawal', 750, 0),
        movement(2, 'deposit', 50, 750),
        movement(1, 'withdrawal', 300, 700),
        movement(0, 'deposit', 1000, 1000),
      ],
      nextCursor: null,
    });
    for (const item of response.body.items) expect(item.occurredAt).toMatch(ISO_DATE);
  });

  it('an account without movements has an empty list (200, not 404)', async () => {
    const { id, position } = await open();
    expect((await movements(id, position)).body).toEqual({ items: [], nextCursor: null });
    const closed = await close(id);
    expect((await movements(id, closed.body.position, {}, 'header')).body).toEqual({ items: [], nextCursor: null });
  });

  it('reflects a movement right after its command, with minPosition as query parameter or header', async () => {
    const { id } = await open();
    const deposited = await deposit(id, 25);
    expect((await movements(id, deposited.body.position, {}, 'query')).body.items[0]).toMatchObject({
      position: deposited.body.position,
      balanceAfter: 25,
    });
    const withdrawn = await withdraw(id, 5);
    expect((await movements(id, withdrawn.body.position, {}, 'header')).body.items[0]).toMatchObject({
      type: 'withdrawal',
      position: withdrawn.body.position,
      balanceAfter: 20,
    });
  });

  it('walks every page with the cursor, without duplicates or gaps, and only the movements of that account', async () => {
    const { id } = await open();
    const other = await open();
    const positions: number[] = [];
    let last = 0;
    for (let i = 0; i < 25; i++) {
      const response = i % 3 === 2 ? await withdraw(id, 1) : await deposit(id, 10);
      positions.push(response.body.position);
      if (i % 5 === 0) last = (await deposit(other.id, 1)).body.position; // interleaved movements of another account
    }
    last = Math.max(last, positions[positions.length - 1]);
    const newestFirst = [...positions].reverse();

    const firstPage = await movements(id, last);
    expect(firstPage.body.items).toHaveLength(20); // the default limit
    expect(typeof firstPage.body.nextCursor).toBe('string');

    for (const limit of [1, 4, 7, 24, 25, 100]) {
      const { positions: walked, pages } = await walk(id, last, limit);
      expect({ limit, walked }).toEqual({ limit, walked: newestFirst });
      expect(pages.slice(0, -1).every((size) => size === limit)).toBe(true);
    }
    // A page size that divides the total: the last full page still says whether more follows.
    expect((await walk(id, last, 25)).pages).toEqual([25]);

    // The whole list, oldest first, is a consistent running balance.
    const all = (await movements(id, last, { limit: 100 })).body.items.reverse();
    let balance = 0;
    for (const item of all) {
      balance += item.type === 'deposit' ? item.amount : -item.amount;
      expect(item.balanceAfter).toBe(balance);
    }
    expect(balance).toBe(17 * 10 - 8);
  });

  it('keeps pages stable while movements are added between them', async () => {
    const { id } = await open();
    const positions: number[] = [];
    for (let i = 0; i < 6; i++) positions.push((await deposit(id, 1)).body.position);

    const first = await movements(id, positions[5], { limit: 3 });
    const late = await deposit(id, 1);
    const second = await movements(id, late.body.position, { limit: 3, cursor: first.body.nextCursor }, 'header');

    const seen = [...first.body.items, ...second.body.items].map((item: { position: number }) => item.position);
    expect(seen).toEqual([...positions].reverse());
    expect(second.body.nextCursor).toBeNull();
    expect((await movements(id, late.body.position, { limit: 1 })).body.items[0].position).toBe(late.body.position);
  });

  // Regression: the account's existence used to be checked only on a first page.
  it('an unknown account is 404 on a later page (with a cursor) too', async () => {
    const { id } = await openWith(10);
    const deposited = await deposit(id, 1);
    const page = await movements(id, deposited.body.position, { limit: 1 });
    expect(typeof page.body.nextCursor).toBe('string');
    const unknown = randomUUID();
    const response = await t.http.get(`/accounts/${unknown}/transactions`).query({ cursor: page.body.nextCursor });
    expect(expectProblem(response, 404, 'ACCOUNT_NOT_FOUND').accountId).toBe(unknown);
  });

  it('an unknown account is 404 ACCOUNT_NOT_FOUND, an invalid id 400 INVALID_ID', async () => {
    const id = randomUUID();
    expect(expectProblem(await t.http.get(`/accounts/${id}/transactions`), 404, 'ACCOUNT_NOT_FOUND').accountId).toBe(id);
    const problem = expectProblem(await t.http.get('/accounts/not-a-uuid/transactions'), 400, 'INVALID_ID');
    expect(problem.errors).toEqual([{ field: 'id', messages: [expect.any(String)] }]);
  });

  it.each([
    ['limit=0', { limit: '0' }, 'limit'],
    ['limit=101', { limit: '101' }, 'limit'],
    ['limit=x', { limit: 'x' }, 'limit'],
    ['limit=1.5', { limit: '1.5' }, 'limit'],
    ['empty limit', { limit: '' }, 'limit'],
    ['an unknown parameter', { type: 'deposit' }, 'type'],
  ])('refuses %s with 400 naming the parameter', async (_label, query, field) => {
    const { id } = await open();
    expect(invalidFields(await t.http.get(`/accounts/${id}/transactions`).query(query))).toEqual([field]);
  });

  it('refuses a cursor that is not one of its own with 400 INVALID_CURSOR', async () => {
    const { id, position } = await openWith(10);
    const accountsCursor = (await reflecting(t.http.get('/accounts').query({ limit: 1 }), position)).body.nextCursor;
    expect(typeof accountsCursor).toBe('string');
    const encode = (json: string) => Buffer.from(json).toString('base64url');
    for (const cursor of [
      'garbage!!',
      accountsCursor, // a cursor of GET /accounts
      encode('{"after":3}'),
      encode('{"before":0}'),
      encode('{"before":-1}'),
      encode('{"before":1.5}'),
      encode('{"before":"3"}'),
      encode(`{"before":${2 ** 60}}`),
      encode('null'),
    ]) {
      expectProblem(await t.http.get(`/accounts/${id}/transactions`).query({ cursor }), 400, 'INVALID_CURSOR');
    }
  });
});
