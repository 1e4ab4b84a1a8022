import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Response } from 'supertest';
import { TEST_SUBJECT } from './support/auth.js';
import { expectProblemAnswer } from './support/problem.js';
import { type Via, projectionPosition, reflecting } from './support/read-your-writes.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// The HTTP contract of the accounts API, end to end: the app exactly as main.ts builds it, on a
// fresh database of a real PostgreSQL. Tests in this file share that database, so each one works on
// accounts it opens itself (list tests use an owner name of their own).
//
// GET /accounts, GET /accounts/{id} and GET /accounts/{id}/transactions are served by projections
// updated asynchronously after each commit: a GET that must reflect a write passes the `position`
// the command answered as minPosition (query parameter or X-Min-Position header, both used here).
// GET /accounts/{id}/events reads the event store itself and is always current.

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

interface Opened {
  readonly id: string;
  readonly version: number;
  /** Log position of the account's last event (what a GET passes as minPosition to reflect it). */
  readonly position: number;
}

async function open(ownerName = 'Ada Lovelace', currency = 'EUR'): Promise<Opened> {
  const response = await t.http.post('/accounts').send({ ownerName, currency });
  expect(response.status).toBe(201);
  return { id: response.body.id, version: response.body.version, position: response.body.position };
}

async function deposit(id: string, amount: number): Promise<Response> {
  const response = await t.http.post(`/accounts/${id}/deposits`).send({ amount });
  expect(response.status).toBe(200);
  return response;
}

async function withdraw(id: string, amount: number): Promise<Response> {
  const response = await t.http.post(`/accounts/${id}/withdrawals`).send({ amount });
  expect(response.status).toBe(200);
  return response;
}

async function close(id: string): Promise<Response> {
  const response = await t.http.post(`/accounts/${id}/close`);
  expect(response.status).toBe(200);
  return response;
}

async function openWith(balance: number, ownerName?: string): Promise<Opened> {
  const account = await open(ownerName);
  if (balance === 0) return account;
  const response = await deposit(account.id, balance);
  return { id: account.id, version: response.body.version, position: response.body.position };
}

async function openClosed(): Promise<Opened> {
  const account = await open();
  const response = await close(account.id);
  return { id: account.id, version: response.body.version, position: response.body.position };
}

/** GET /accounts/{id} once the account-summary projection has applied the write at `position`. */
async function getAccount(id: string, position: number, via: Via = 'query'): Promise<Response> {
  const response = await reflecting(t.http.get(`/accounts/${id}`), position, via);
  expect(response.status).toBe(200);
  expect(projectionPosition(response)).toBeGreaterThanOrEqual(position);
  return response;
}

/** Every page of GET /accounts/{id}/events. */
async function historyOf(id: string): Promise<Array<Record<string, any>>> {
  const items: Array<Record<string, any>> = [];
  let cursor: string | undefined;
  do {
    const response = await t.http.get(`/accounts/${id}/events`).query({ limit: 1000, ...(cursor ? { cursor } : {}) });
    expect(response.status).toBe(200);
    items.push(...response.body.items);
    cursor = response.body.nextCursor ?? undefined;
  } while (cursor);
  return items;
}

async function totalEvents(): Promise<number> {
  const [row] = await t.dataSource.query('SELECT count(*)::int AS count FROM events');
  return row.count;
}

/**
 * What a refused request must leave untouched: the account's history (from the store, always
 * current), its balance, version and status (from the read model, read once it has applied the
 * account's last stored event, so that the comparison is meaningful), and the whole log.
 */
async function stateOf(id?: string): Promise<unknown> {
  const total = await totalEvents();
  if (id === undefined) return { total };
  const history = await historyOf(id);
  const account = (await getAccount(id, history[history.length - 1].position, 'header')).body;
  return { total, history, balance: account.balance, version: account.version, status: account.status };
}

/**
 * Every error is RFC 9457 problem+json with a stable code (support/problem.ts), and carries no ETag
 * (the only exception being 412, whose ETag is the current version, never an Express content hash).
 */
function expectProblem(response: Response, status: number, code: string): Record<string, any> {
  const body = expectProblemAnswer(response, status, code);
  if (status === 412) expect(response.headers.etag).toMatch(/^"[1-9][0-9]*"$/);
  else expect(response.headers.etag).toBeUndefined();
  return body;
}

function invalidFields(response: Response): string[] {
  expectProblem(response, 400, 'VALIDATION_FAILED');
  const errors = response.body.errors as Array<{ field: string; messages: string[] }>;
  expect(Array.isArray(errors)).toBe(true);
  for (const error of errors) expect(error.messages.length).toBeGreaterThan(0);
  return errors.map((error) => error.field).sort();
}

describe('POST /accounts', () => {
  it('opens an account: 201, Location, ETag "1", body {id, version, position}', async () => {
    const response = await t.http.post('/accounts').send({ ownerName: 'Ada Lovelace', currency: 'EUR' });

    expect(response.status).toBe(201);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.body).toEqual({ id: expect.stringMatching(UUID), version: 1, position: expect.any(Number) });
    expect(Object.keys(response.body).sort()).toEqual(['id', 'position', 'version']);
    expect(response.headers.location).toBe(`/accounts/${response.body.id}`);
    expect(response.headers.etag).toBe('"1"');

    const [opened] = await historyOf(response.body.id);
    expect(opened).toMatchObject({ type: 'accounts.AccountOpened', version: 1, position: response.body.position });
  });

  it('opens a new account on every call, each at the Location it names', async () => {
    const first = await t.http.post('/accounts').send({ ownerName: 'Twin', currency: 'EUR' }).expect(201);
    const second = await t.http.post('/accounts').send({ ownerName: 'Twin', currency: 'EUR' }).expect(201);

    expect(first.body.id).not.toBe(second.body.id);
    expect(second.body.position).toBeGreaterThan(first.body.position);
    const fetched = await reflecting(t.http.get(second.headers.location), second.body.position).expect(200);
    expect(fetched.body).toMatchObject({ id: second.body.id, ownerName: 'Twin', currency: 'EUR', balance: 0, status: 'open', version: 1 });
  });

  it.each([
    ['1 character', 'A'],
    ['100 characters', 'x'.repeat(100)],
    ['non-ASCII letters and inner spaces', 'Zoë  Ångström-Łukasiewicz'],
  ])('accepts an ownerName of %s and stores it unchanged', async (_label, ownerName) => {
    const { id, position } = await open(ownerName);
    expect((await getAccount(id, position)).body.ownerName).toBe(ownerName);
  });

  it.each([
    ['empty (0 characters)', ''],
    ['101 characters', 'x'.repeat(101)],
    ['blank', '   '],
    ['blank with tabs and newlines', ' \t\n '],
    ['with a control character', 'Ada\u0000Lovelace'],
    ['a number', 42],
    ['null', null],
  ])('refuses an ownerName that is %s, naming the field', async (_label, ownerName) => {
    const before = await stateOf();
    const response = await t.http.post('/accounts').send({ ownerName, currency: 'EUR' });
    expect(invalidFields(response)).toEqual(['ownerName']);
    expect(await stateOf()).toEqual(before);
  });

  it.each(['EUR', 'USD', 'JPY', 'CHF'])('accepts the ISO 4217 currency %s', async (currency) => {
    const { id, position } = await open('Currency', currency);
    expect((await getAccount(id, position, 'header')).body.currency).toBe(currency);
  });

  it.each([
    ['not an ISO 4217 code', 'XXY'],
    ['lower case', 'eur'],
    ['mixed case', 'Eur'],
    ['too short', 'EU'],
    ['too long', 'EURO'],
    ['empty', ''],
    ['a number', 3],
    ['null', null],
  ])('refuses a currency that is %s, naming the field', async (_label, currency) => {
    const before = await stateOf();
    const response = await t.http.post('/accounts').send({ ownerName: 'Ada', currency });
    expect(invalidFields(response)).toEqual(['currency']);
    expect(await stateOf()).toEqual(before);
  });

  it('names every missing field', async () => {
    const before = await stateOf();
    expect(invalidFields(await t.http.post('/accounts').send({}))).toEqual(['currency', 'ownerName']);
    expect(invalidFields(await t.http.post('/accounts'))).toEqual(['currency', 'ownerName']);
    expect(await stateOf()).toEqual(before);
  });

  it('names every invalid field at once', async () => {
    const response = await t.http.post('/accounts').send({ ownerName: '', currency: 'eur', balance: 1000 });
    expect(invalidFields(response)).toEqual(['balance', 'currency', 'ownerName']);
  });

  it.each([
    ['a scalar', { balance: 1_000_000 }],
    ['an object', { owner: { name: 'Ada' } }],
    ['an id (the server chooses ids)', { id: randomUUID() }],
  ])('refuses an unknown property holding %s, naming it', async (_label, extra) => {
    const before = await stateOf();
    const response = await t.http.post('/accounts').send({ ownerName: 'Ada', currency: 'EUR', ...extra });
    expect(invalidFields(response)).toEqual(Object.keys(extra));
    expect(await stateOf()).toEqual(before);
  });

  it('refuses a JSON array body as invalid, never 500', async () => {
    const response = await t.http.post('/accounts').send([{ ownerName: 'Ada', currency: 'EUR' }]);
    expectProblem(response, 400, 'VALIDATION_FAILED');
  });
});

describe('deposits, withdrawals and close', () => {
  it('deposits: 200 {id, version, position} and the new ETag; the balance follows', async () => {
    const { id } = await open();
    const response = await t.http.post(`/accounts/${id}/deposits`).send({ amount: 1050 });

    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.body).toEqual({ id, version: 2, position: expect.any(Number) });
    expect(response.headers.etag).toBe('"2"');
    expect(response.headers.location).toBeUndefined();
    const account = await getAccount(id, response.body.position);
    expect(account.body).toMatchObject({ balance: 1050, version: 2 });
    expect(account.headers.etag).toBe('"2"');
    const events = await historyOf(id);
    expect(events[1]).toMatchObject({
      type: 'accounts.MoneyDeposited',
      version: 2,
      position: response.body.position,
      data: { accountId: id, amount: 1050, balanceAfter: 1050 },
    });
  });

  it('withdraws: 200 {id, version, position} and the new ETag; the balance follows', async () => {
    const { id } = await openWith(1000);
    const response = await t.http.post(`/accounts/${id}/withdrawals`).send({ amount: 300 });

    expect(response.status).toBe(200);
    expect(response.body).toEqual({ id, version: 3, position: expect.any(Number) });
    expect(response.headers.etag).toBe('"3"');
    expect((await getAccount(id, response.body.position, 'header')).body).toMatchObject({ balance: 700, version: 3 });
    expect((await historyOf(id))[2]).toMatchObject({
      type: 'accounts.MoneyWithdrawn',
      version: 3,
      position: response.body.position,
      data: { accountId: id, amount: 300, balanceAfter: 700 },
    });
  });

  it('may withdraw the whole balance, down to exactly zero', async () => {
    const { id } = await openWith(500);
    const withdrawn = await withdraw(id, 500);
    expect((await getAccount(id, withdrawn.body.position)).body.balance).toBe(0);
  });

  it('closes an account at zero: 200 {id, version, position}, ETag, status closed', async () => {
    const { id } = await openWith(100);
    await withdraw(id, 100);
    const response = await t.http.post(`/accounts/${id}/close`);

    expect(response.status).toBe(200);
    expect(response.body).toEqual({ id, version: 4, position: expect.any(Number) });
    expect(response.headers.etag).toBe('"4"');
    expect((await getAccount(id, response.body.position)).body).toMatchObject({ status: 'closed', balance: 0, version: 4 });
    expect((await historyOf(id))[3]).toMatchObject({ type: 'accounts.AccountClosed', version: 4, data: { accountId: id } });
  });

  it('close accepts an empty JSON object as body but refuses any field', async () => {
    const { id, position } = await open();
    const before = await stateOf(id);
    const refused = await t.http.post(`/accounts/${id}/close`).send({ force: true });
    expect(invalidFields(refused)).toEqual(['force']);
    expect((await getAccount(id, position)).body.status).toBe('open');
    expect(await stateOf(id)).toEqual(before);

    const closed = await t.http.post(`/accounts/${id}/close`).send({}).expect(200);
    expect((await getAccount(id, closed.body.position, 'header')).body.status).toBe('closed');
  });

  it('keeps an exact balance up to 2^53 - 1 and refuses to go past it with 422', async () => {
    const { id } = await open();
    await deposit(id, MAX_SAFE - 1);
    const full = await deposit(id, 1);
    expect((await getAccount(id, full.body.position)).body.balance).toBe(MAX_SAFE);

    const before = await stateOf(id);
    const refused = await t.http.post(`/accounts/${id}/deposits`).send({ amount: 1 });
    expectProblem(refused, 422, 'ACCOUNT_BALANCE_LIMIT_EXCEEDED');
    expect(await stateOf(id)).toEqual(before);
    const emptied = await withdraw(id, MAX_SAFE);
    expect((await getAccount(id, emptied.body.position, 'header')).body.balance).toBe(0);
  });

  describe.each(['deposits', 'withdrawals'])('amounts of /%s', (route) => {
    it.each([
      ['1.5 (not an integer)', 1.5],
      ['"10" (a string)', '10'],
      ['0', 0],
      ['-5', -5],
      ['2^53 (not a safe integer)', 2 ** 53],
      ['1e21', 1e21],
      ['null', null],
      ['true', true],
      ['an object', { value: 10 }],
      ['an array', [10]],
    ])('refuses %s with 400 naming amount, writing nothing', async (_label, amount) => {
      const { id } = await openWith(1000);
      const before = await stateOf(id);
      const response = await t.http.post(`/accounts/${id}/${route}`).send({ amount });
      expect(invalidFields(response)).toEqual(['amount']);
      expect(await stateOf(id)).toEqual(before);
    });

    it('refuses a missing amount and an unknown property, naming them', async () => {
      const { id } = await openWith(1000);
      const before = await stateOf(id);
      expect(invalidFields(await t.http.post(`/accounts/${id}/${route}`).send({}))).toEqual(['amount']);
      expect(invalidFields(await t.http.post(`/accounts/${id}/${route}`))).toEqual(['amount']);
      expect(invalidFields(await t.http.post(`/accounts/${id}/${route}`).send({ amount: 10, currency: 'EUR' }))).toEqual(['currency']);
      expect(await stateOf(id)).toEqual(before);
    });

    it('accepts 1, the smallest amount', async () => {
      const { id } = await openWith(1000);
      const response = await t.http.post(`/accounts/${id}/${route}`).send({ amount: 1 }).expect(200);
      expect((await getAccount(id, response.body.position)).body.balance).toBe(route === 'deposits' ? 1001 : 999);
    });
  });
});

describe('If-Match (optimistic concurrency over HTTP)', () => {
  const commands = [
    ['deposit', (id: string) => t.http.post(`/accounts/${id}/deposits`).send({ amount: 10 })],
    ['withdrawal', (id: string) => t.http.post(`/accounts/${id}/withdrawals`).send({ amount: 10 })],
    ['close', (id: string) => t.http.post(`/accounts/${id}/close`)],
  ] as const;

  /** An account at version 3 whose balance lets every command above succeed (close needs 0). */
  async function accountFor(command: string): Promise<Opened> {
    const account = await openWith(100);
    const response = command === 'close' ? await withdraw(account.id, 100) : await deposit(account.id, 100);
    expect(response.body.version).toBe(3);
    return { id: account.id, version: 3, position: response.body.position };
  }

  it.each(commands)('%s with a matching If-Match succeeds and answers the next ETag', async (name, send) => {
    const { id } = await accountFor(name);
    const response = await send(id).set('If-Match', '"3"');
    expect(response.status).toBe(200);
    expect(response.body.version).toBe(4);
    expect(response.headers.etag).toBe('"4"');
    const read = await getAccount(id, response.body.position, 'header');
    expect(read.headers.etag).toBe('"4"');
    expect(read.body.version).toBe(4);
  });

  it.each(commands)('%s with a stale If-Match is 412 with the current ETag, and writes nothing', async (name, send) => {
    const { id } = await accountFor(name);
    const before = await stateOf(id);

    for (const stale of ['"1"', '"2"', '"4"', '"999"']) {
      const response = await send(id).set('If-Match', stale);
      const problem = expectProblem(response, 412, 'VERSION_MISMATCH');
      expect(response.headers.etag).toBe('"3"');
      expect(problem).toMatchObject({ currentVersion: 3, expectedVersion: Number(stale.replaceAll('"', '')) });
    }
    expect(await stateOf(id)).toEqual(before);
  });

  it.each(commands)('%s with a malformed If-Match is 400 INVALID_IF_MATCH, and writes nothing', async (name, send) => {
    const { id } = await accountFor(name);
    const before = await stateOf(id);
    for (const malformed of ['3', '"3', 'abc', 'W/"3"', '""', '"0"', '"-3"', '"3", "4"']) {
      const response = await send(id).set('If-Match', malformed);
      expectProblem(response, 400, 'INVALID_IF_MATCH');
    }
    expect(await stateOf(id)).toEqual(before);
  });

  it.each(commands)('%s with If-Match: * succeeds whatever the version', async (name, send) => {
    const { id } = await accountFor(name);
    const response = await send(id).set('If-Match', '*');
    expect(response.status).toBe(200);
    expect(response.headers.etag).toBe('"4"');
  });

  it('the ETag of one answer is the If-Match of the next: a client can chain commands on it', async () => {
    const { id } = await open();
    let etag = '"1"';
    let position = 0;
    for (const amount of [10, 20, 30]) {
      const response = await t.http.post(`/accounts/${id}/deposits`).set('If-Match', etag).send({ amount });
      expect(response.status).toBe(200);
      etag = response.headers.etag;
      position = response.body.position;
    }
    const read = await getAccount(id, position);
    expect(read.headers.etag).toBe(etag);
    expect(read.body).toMatchObject({ balance: 60, version: 4 });
    // A client that read the account before the last change is now stale.
    const stale = await t.http.post(`/accounts/${id}/withdrawals`).set('If-Match', '"3"').send({ amount: 60 });
    expectProblem(stale, 412, 'VERSION_MISMATCH');
    expect(stale.headers.etag).toBe(etag);
  });

  it('a matching If-Match does not bypass the business rules', async () => {
    const { id, version } = await openWith(50);
    const before = await stateOf(id);
    const response = await t.http.post(`/accounts/${id}/withdrawals`).set('If-Match', `"${version}"`).send({ amount: 51 });
    expectProblem(response, 422, 'ACCOUNT_INSUFFICIENT_FUNDS');
    expect(await stateOf(id)).toEqual(before);
  });
});

describe('business rules: 422 with a stable code, nothing written', () => {
  it('refuses to withdraw more than the balance: ACCOUNT_INSUFFICIENT_FUNDS', async () => {
    const { id } = await openWith(100);
    const before = await stateOf(id);
    const response = await t.http.post(`/accounts/${id}/withdrawals`).send({ amount: 101 });
    const problem = expectProblem(response, 422, 'ACCOUNT_INSUFFICIENT_FUNDS');
    expect(problem).toMatchObject({ accountId: id, balance: 100, requested: 101 });
    expect(await stateOf(id)).toEqual(before);
  });

  it('refuses any withdrawal from an empty account', async () => {
    const { id } = await open();
    const before = await stateOf(id);
    expectProblem(await t.http.post(`/accounts/${id}/withdrawals`).send({ amount: 1 }), 422, 'ACCOUNT_INSUFFICIENT_FUNDS');
    expect(await stateOf(id)).toEqual(before);
  });

  it('refuses to close while money remains: ACCOUNT_BALANCE_NOT_ZERO', async () => {
    const { id } = await openWith(1);
    const before = await stateOf(id);
    const problem = expectProblem(await t.http.post(`/accounts/${id}/close`), 422, 'ACCOUNT_BALANCE_NOT_ZERO');
    expect(problem).toMatchObject({ balance: 1 });
    expect(await stateOf(id)).toEqual(before);
  });

  it.each([
    ['deposit', (id: string) => t.http.post(`/accounts/${id}/deposits`).send({ amount: 10 })],
    ['withdraw', (id: string) => t.http.post(`/accounts/${id}/withdrawals`).send({ amount: 10 })],
    ['close again', (id: string) => t.http.post(`/accounts/${id}/close`)],
  ] as const)('refuses to %s on a closed account: ACCOUNT_CLOSED', async (_name, send) => {
    const { id } = await openClosed();
    const before = await stateOf(id);
    expectProblem(await send(id), 422, 'ACCOUNT_CLOSED');
    expect(await stateOf(id)).toEqual(before);
  });
});

describe('unknown accounts and invalid ids', () => {
  const routes = [
    ['GET /accounts/{id}', (id: string) => t.http.get(`/accounts/${id}`)],
    ['GET /accounts/{id}/transactions', (id: string) => t.http.get(`/accounts/${id}/transactions`)],
    ['GET /accounts/{id}/events', (id: string) => t.http.get(`/accounts/${id}/events`)],
    ['POST /accounts/{id}/deposits', (id: string) => t.http.post(`/accounts/${id}/deposits`).send({ amount: 10 })],
    ['POST /accounts/{id}/withdrawals', (id: string) => t.http.post(`/accounts/${id}/withdrawals`).send({ amount: 10 })],
    ['POST /accounts/{id}/close', (id: string) => t.http.post(`/accounts/${id}/close`)],
  ] as const;

  it.each(routes)('%s on an unknown account is 404 ACCOUNT_NOT_FOUND and writes nothing', async (_route, send) => {
    const before = await stateOf();
    const id = randomUUID();
    const problem = expectProblem(await send(id), 404, 'ACCOUNT_NOT_FOUND');
    expect(problem.accountId).toBe(id);
    expect(await stateOf()).toEqual(before);
  });

  it.each(routes.filter(([route]) => route.startsWith('POST')))('%s with If-Match on an unknown account is still 404 (never creates it)', async (_route, send) => {
    const id = randomUUID();
    expectProblem(await send(id).set('If-Match', '"1"'), 404, 'ACCOUNT_NOT_FOUND');
    expectProblem(await t.http.get(`/accounts/${id}/events`), 404, 'ACCOUNT_NOT_FOUND');
  });

  it.each(routes)('%s with a non-UUID id is 400 INVALID_ID naming the id', async (_route, send) => {
    const before = await stateOf();
    const valid = randomUUID();
    for (const bad of ['not-a-uuid', '123', `${valid}0`, valid.slice(1), valid.replace(/-/g, ''), `${valid.slice(0, -1)}g`, '%20']) {
      const problem = expectProblem(await send(bad), 400, 'INVALID_ID');
      expect(problem.errors).toEqual([{ field: 'id', messages: [expect.any(String)] }]);
    }
    expect(await stateOf()).toEqual(before);
  });

  it('an id in upper case names the same account on every route', async () => {
    const { id, position } = await openWith(100);
    const upper = id.toUpperCase();

    expect((await reflecting(t.http.get(`/accounts/${upper}`), position).expect(200)).body.id).toBe(id);
    const deposited = await t.http.post(`/accounts/${upper}/deposits`).send({ amount: 5 }).expect(200);
    expect(deposited).toHaveProperty('body.id', id);
    const withdrawn = await t.http.post(`/accounts/${upper}/withdrawals`).send({ amount: 105 }).expect(200);
    const closed = await t.http.post(`/accounts/${upper}/close`).expect(200);
    const movements = (await reflecting(t.http.get(`/accounts/${upper}/transactions`), closed.body.position, 'header').expect(200)).body.items;
    expect(movements.map((movement: { position: number }) => movement.position)).toEqual([withdrawn.body.position, deposited.body.position, position]);
    const events = (await t.http.get(`/accounts/${upper}/events`).expect(200)).body.items;
    expect(events.map((event: { type: string }) => event.type)).toEqual([
      'accounts.AccountOpened',
      'accounts.MoneyDeposited',
      'accounts.MoneyDeposited',
      'accounts.MoneyWithdrawn',
      'accounts.AccountClosed',
    ]);
    expect((await getAccount(id, closed.body.position)).body).toMatchObject({ status: 'closed', balance: 0, version: 5 });
  });
});

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

describe('read-your-writes: minPosition, X-Min-Position and X-Projection-Position', () => {
  const owner = () => `Reader ${randomUUID()}`;

  it.each(['query', 'header'] as const)('a GET right after a command, given its position (as %s), reflects it on every projection-backed route', async (via) => {
    const name = owner();
    const { id } = await open(name);
    // Write, then read at once with the write's position: 10 rounds on each route.
    let balance = 0;
    for (let round = 0; round < 10; round++) {
      const deposited = await deposit(id, 100);
      balance += 100;
      const account = await reflecting(t.http.get(`/accounts/${id}`), deposited.body.position, via);
      expect(account.status).toBe(200);
      expect(account.body).toMatchObject({ id, balance, version: deposited.body.version });
      expect(account.headers.etag).toBe(`"${deposited.body.version}"`);
      expect(projectionPosition(account)).toBeGreaterThanOrEqual(deposited.body.position);

      const withdrawn = await withdraw(id, 1);
      balance -= 1;
      const listed = await reflecting(t.http.get('/accounts').query({ owner: name }), withdrawn.body.position, via);
      expect(listed.status).toBe(200);
      expect(listed.body.items).toEqual([expect.objectContaining({ id, balance, version: withdrawn.body.version })]);
      expect(projectionPosition(listed)).toBeGreaterThanOrEqual(withdrawn.body.position);

      const again = await deposit(id, 10);
      balance += 10;
      const movements = await reflecting(t.http.get(`/accounts/${id}/transactions`).query({ limit: 1 }), again.body.position, via);
      expect(movements.status).toBe(200);
      expect(movements.body.items).toEqual([expect.objectContaining({ type: 'deposit', amount: 10, balanceAfter: balance, position: again.body.position })]);
      expect(projectionPosition(movements)).toBeGreaterThanOrEqual(again.body.position);
    }
  });

  it('a position reached long ago answers the current state, never an older one', async () => {
    const { id, position: opened } = await open();
    await deposit(id, 5);
    const last = await deposit(id, 7);
    const current = await getAccount(id, last.body.position);
    const reached = projectionPosition(current);

    const old = await getAccount(id, opened, 'header');
    expect(old.body).toEqual(current.body);
    expect(projectionPosition(old)).toBeGreaterThanOrEqual(reached);
  });

  it('without minPosition (or with minPosition=0) a GET answers at once, still saying which position it reflects', async () => {
    const { id, position } = await openWith(42);
    const reached = projectionPosition(await getAccount(id, position));

    for (const request of [
      t.http.get(`/accounts/${id}`),
      t.http.get(`/accounts/${id}?minPosition=0`),
      t.http.get(`/accounts/${id}`).set('X-Min-Position', '0'),
    ]) {
      const response = await request;
      expect(response.status).toBe(200);
      expect(response.body).toMatchObject({ id, balance: 42, version: 2 });
      expect(projectionPosition(response)).toBeGreaterThanOrEqual(reached);
    }
    for (const path of ['/accounts', `/accounts/${id}/transactions`]) {
      const response = await t.http.get(path);
      expect(response.status).toBe(200);
      expect(projectionPosition(response)).toBeGreaterThanOrEqual(0);
    }
  });

  it('an unknown account is still 404 once the projection has reached the given position', async () => {
    const { position } = await open();
    const id = randomUUID();
    expect(expectProblem(await reflecting(t.http.get(`/accounts/${id}`), position), 404, 'ACCOUNT_NOT_FOUND').accountId).toBe(id);
    expect(expectProblem(await reflecting(t.http.get(`/accounts/${id}/transactions`), position, 'header'), 404, 'ACCOUNT_NOT_FOUND').accountId).toBe(id);
  });

  const PROJECTION_GETS = [
    ['GET /accounts/{id}', (id: string): string => `/accounts/${id}`],
    ['GET /accounts', (_id: string): string => '/accounts'],
    ['GET /accounts/{id}/transactions', (id: string): string => `/accounts/${id}/transactions`],
  ] as const;

  const INVALID: ReadonlyArray<readonly [string, string, readonly Via[]]> = [
    ['-1', '-1', ['query', 'header']],
    ['x', 'x', ['query', 'header']],
    ['1.5', '1.5', ['query', 'header']],
    ['1e3', '1e3', ['query', 'header']],
    ['0x10', '0x10', ['query', 'header']],
    ['+1', '+1', ['query', 'header']],
    ['2^53 (not a safe integer)', String(2 ** 53), ['query', 'header']],
    ['20 digits', '9'.repeat(20), ['query', 'header']],
    ['empty', '', ['query']],
    ['" 1" (with a space)', ' 1', ['query']],
  ];

  it.each(PROJECTION_GETS)('%s refuses an invalid minPosition with 400 INVALID_MIN_POSITION, as query parameter and as header', async (_route, path) => {
    const { id } = await open();
    for (const [label, value, vias] of INVALID) {
      for (const via of vias) {
        const request = t.http.get(path(id));
        const response = await (via === 'query' ? request.query({ minPosition: value }) : request.set('X-Min-Position', value));
        expect({ label, via, status: response.status }).toEqual({ label, via, status: 400 });
        const problem = expectProblem(response, 400, 'INVALID_MIN_POSITION');
        expect(problem.errors).toEqual([{ field: 'minPosition', messages: [expect.any(String)] }]);
      }
    }
    // A repeated parameter is refused too, never a 500.
    expectProblem(await t.http.get(`${path(id)}?minPosition=1&minPosition=2`), 400, 'INVALID_MIN_POSITION');
  });

  describe('when the projection does not reach minPosition in time', () => {
    let slow: TestApp;
    beforeAll(async () => {
      slow = await startTestApp({ READ_YOUR_WRITES_TIMEOUT_MS: '200' });
    });
    afterAll(() => slow?.close());

    it.each([
      ['GET /accounts/{id}', 'account-summary', (id: string): string => `/accounts/${id}`],
      ['GET /accounts', 'account-summary', (_id: string): string => '/accounts'],
      ['GET /accounts/{id}/transactions', 'account-transactions', (id: string): string => `/accounts/${id}/transactions`],
    ] as const)('%s answers 503 PROJECTION_NOT_CAUGHT_UP with Retry-After after READ_YOUR_WRITES_TIMEOUT_MS', async (_route, projection, path) => {
      const opened = await slow.http.post('/accounts').send({ ownerName: 'Ada', currency: 'EUR' }).expect(201);
      const beyond = opened.body.position + 1_000_000;
      for (const via of ['query', 'header'] as const) {
        const started = Date.now();
        const response = await reflecting(slow.http.get(path(opened.body.id)), beyond, via);
        const elapsed = Date.now() - started;
        const problem = expectProblem(response, 503, 'PROJECTION_NOT_CAUGHT_UP');
        expect(problem).toMatchObject({ projection, minPosition: beyond, position: expect.any(Number) });
        expect(problem.position).toBeLessThan(beyond);
        expect(response.headers['retry-after']).toMatch(/^[1-9][0-9]*$/);
        // It did wait (the server waits READ_YOUR_WRITES_TIMEOUT_MS before giving up).
        expect(elapsed).toBeGreaterThanOrEqual(200);
      }
    });

    // Regression: the wait used to run before the pipes, so a request that can never succeed
    // (non-UUID id, invalid limit) waited the whole timeout and was told 503 instead of 400.
    it.each([
      ['GET /accounts/{id} with a non-UUID id', '/accounts/not-a-uuid', 'INVALID_ID'],
      ['GET /accounts/{id}/transactions with a non-UUID id', '/accounts/not-a-uuid/transactions', 'INVALID_ID'],
      ['GET /accounts with limit=0', '/accounts?limit=0', 'VALIDATION_FAILED'],
      ['GET /accounts/{id}/transactions with limit=0', `/accounts/${randomUUID()}/transactions?limit=0`, 'VALIDATION_FAILED'],
    ])('%s is 400 even with a minPosition not reached, never 503', async (_label, path, code) => {
      const response = await reflecting(slow.http.get(path), 1_000_000_000, 'header');
      expectProblem(response, 400, code);
    });
  });


  // Regression (src/event-sourcing/projection-runner.ts): the runner reads only transactions older than
  // every transaction in flight. When an append's NOTIFY arrives while an older write transaction
  // that appends nothing is still open (another projection's batch, a lease renewal, any UPDATE), the
  // runner finds nothing visible, then idles a whole PROJECTION_POLL_INTERVAL_MS: nothing notifies
  // when that transaction ends. With the defaults this shows as sporadic ~1 s reads (seen in this
  // suite); here the poll interval is longer than the timeout, so the read was a 503. Fixed: a runner
  // that finds committed events held back looks again within milliseconds.
  describe('when an older transaction that appends nothing is still open at the NOTIFY', () => {
    let held: TestApp;
    beforeAll(async () => {
      held = await startTestApp({ PROJECTION_POLL_INTERVAL_MS: '10000', READ_YOUR_WRITES_TIMEOUT_MS: '3000' });
    });
    afterAll(() => held?.close());

    it('the projection catches up once that transaction ends, not a poll interval later', async () => {
      const opened = await held.http.post('/accounts').send({ ownerName: 'Ada', currency: 'EUR' }).expect(201);
      await reflecting(held.http.get(`/accounts/${opened.body.id}`), opened.body.position).expect(200);

      const holder = held.dataSource.createQueryRunner();
      await holder.connect();
      try {
        await holder.startTransaction();
        await holder.query('SELECT pg_current_xact_id()'); // a write transaction's xid, older than the deposit's
        const deposited = await held.http.post(`/accounts/${opened.body.id}/deposits`).send({ amount: 5 }).expect(200);
        await new Promise((resolve) => setTimeout(resolve, 100)); // the deposit's NOTIFY has been delivered
        await holder.commitTransaction();

        const read = await reflecting(held.http.get(`/accounts/${opened.body.id}`), deposited.body.position, 'header');
        expect(read.status).toBe(200);
        expect(read.body).toMatchObject({ balance: 5, version: 2 });
      } finally {
        if (holder.isTransactionActive) await holder.rollbackTransaction();
        await holder.release();
      }
    });
  });
});

describe('GET /accounts/{id}/transactions', () => {
  async function movements(id: string, position: number, query: Record<string, string | number> = {}, via: Via = 'query'): Promise<Response> {
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
    expect((await movements(id, deposited.body.position, {}, 'query')).body.items[0]).toMatchObject({ position: deposited.body.position, balanceAfter: 25 });
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

describe('GET /accounts/{id}/events', () => {
  it('answers the full history with type, version, position, data, metadata and recordedAt', async () => {
    const opened = await t.http.post('/accounts').set('X-Correlation-Id', 'corr-open-1').send({ ownerName: 'Ada', currency: 'EUR' });
    const id = opened.body.id;
    const deposited = await t.http.post(`/accounts/${id}/deposits`).set('X-Correlation-Id', 'corr:deposit_2.a-b').send({ amount: 250 });
    const withdrawn = await t.http.post(`/accounts/${id}/withdrawals`).send({ amount: 250 });
    const closed = await t.http.post(`/accounts/${id}/close`).set('X-Correlation-Id', 'corr-close-4');
    const commands = [opened, deposited, withdrawn, closed];

    const response = await t.http.get(`/accounts/${id}/events`).expect(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.headers.etag).toBeUndefined();
    const events = response.body.items as Array<Record<string, any>>;
    expect(response.body.nextCursor).toBeNull(); // one page holds it all

    expect(events.map((event) => [event.type, event.version])).toEqual([
      ['accounts.AccountOpened', 1],
      ['accounts.MoneyDeposited', 2],
      ['accounts.MoneyWithdrawn', 3],
      ['accounts.AccountClosed', 4],
    ]);
    expect(events.map((event) => event.position)).toEqual(commands.map((command) => command.body.position));
    expect(events.map((event) => event.data)).toEqual([
      { accountId: id, ownerName: 'Ada', currency: 'EUR' },
      { accountId: id, amount: 250, balanceAfter: 250, reference: null },
      { accountId: id, amount: 250, balanceAfter: 0, reference: null },
      { accountId: id },
    ]);
    for (const [index, event] of events.entries()) {
      expect(event).toEqual({
        streamId: `account-${id}`,
        type: expect.any(String),
        version: index + 1,
        position: expect.any(Number),
        // Deposits and withdrawals are at schema version 2 (they gained `reference`).
        schemaVersion: index === 1 || index === 2 ? 2 : 1,
        data: expect.any(Object),
        metadata: {
          eventId: expect.stringMatching(UUID),
          correlationId: commands[index].headers['x-correlation-id'],
          causationId: expect.stringMatching(UUID),
          occurredAt: expect.stringMatching(ISO_DATE),
          actor: TEST_SUBJECT, // the bearer token's subject
        },
        recordedAt: expect.stringMatching(ISO_DATE),
      });
    }
    expect(events.map((event) => event.metadata.correlationId).slice(0, 2)).toEqual(['corr-open-1', 'corr:deposit_2.a-b']);
    expect(events[3].metadata.correlationId).toBe('corr-close-4');
    expect(new Set(events.map((event) => event.metadata.eventId)).size).toBe(4);
    expect(new Set(events.map((event) => event.metadata.causationId)).size).toBe(4);
  });

  it('echoes a valid X-Correlation-Id on every answer, errors included, and stores it on the event', async () => {
    const { id } = await open();
    const ok = await t.http.post(`/accounts/${id}/deposits`).set('X-Correlation-Id', 'trace-42').send({ amount: 1 });
    expect(ok.headers['x-correlation-id']).toBe('trace-42');
    const events = await historyOf(id);
    expect(events[1].metadata.correlationId).toBe('trace-42');

    const refused = await t.http.post(`/accounts/${id}/withdrawals`).set('X-Correlation-Id', 'trace-43').send({ amount: 2 });
    expect(refused.status).toBe(422);
    expect(refused.headers['x-correlation-id']).toBe('trace-43');
    const malformed = await t.http.post('/accounts').set('X-Correlation-Id', 'trace-44').set('Content-Type', 'application/json').send('{');
    expect(malformed.status).toBe(400);
    expect(malformed.headers['x-correlation-id']).toBe('trace-44');
  });

  it('replaces an absent or unacceptable X-Correlation-Id with a fresh one, which is stored', async () => {
    const { id } = await open();
    for (const given of [undefined, 'has spaces', 'x'.repeat(129), 'semi;colon']) {
      const request = t.http.post(`/accounts/${id}/deposits`).send({ amount: 1 });
      const response = await (given === undefined ? request : request.set('X-Correlation-Id', given)).expect(200);
      const echoed = response.headers['x-correlation-id'];
      expect(echoed).toMatch(UUID);
      const event = (await historyOf(id)).find((candidate) => candidate.version === response.body.version);
      expect(event?.metadata.correlationId).toBe(echoed);
    }
  });
});

describe('errors are problem+json, never 500', () => {
  it.each([
    ['truncated', '{"ownerName":'],
    ['single-quoted', "{'ownerName':'Ada','currency':'EUR'}"],
    ['a trailing comma', '{"ownerName":"Ada","currency":"EUR",}'],
    ['not JSON at all', 'ownerName=Ada'],
    ['JSON null', 'null'],
    ['a JSON string', '"Ada"'],
    ['a JSON number', '42'],
  ])('POST /accounts with a body that is %s is 400 MALFORMED_JSON', async (_label, body) => {
    const before = await stateOf();
    const response = await t.http.post('/accounts').set('Content-Type', 'application/json').send(body);
    expectProblem(response, 400, 'MALFORMED_JSON');
    expect(await stateOf()).toEqual(before);
  });

  it.each(['deposits', 'withdrawals', 'close'])('POST /accounts/{id}/%s with malformed JSON is 400 MALFORMED_JSON', async (route) => {
    const { id } = await openWith(100);
    const before = await stateOf(id);
    const response = await t.http.post(`/accounts/${id}/${route}`).set('Content-Type', 'application/json').send('{"amount": 10');
    expectProblem(response, 400, 'MALFORMED_JSON');
    expect(await stateOf(id)).toEqual(before);
  });

  it('a body larger than the default limit (100 KiB) is 413', async () => {
    const before = await stateOf();
    const response = await t.http.post('/accounts').send({ ownerName: 'x'.repeat(101 * 1024), currency: 'EUR' });
    expectProblem(response, 413, 'PAYLOAD_TOO_LARGE');
    expect(await stateOf()).toEqual(before);
  });

  it('BODY_LIMIT_BYTES sets the limit: a body of exactly the limit passes, one byte more is 413', async () => {
    const small = await startTestApp({ BODY_LIMIT_BYTES: '1024' });
    try {
      const json = JSON.stringify({ ownerName: 'Ada', currency: 'EUR' });
      const atLimit = json + ' '.repeat(1024 - json.length);
      const overLimit = json + ' '.repeat(1025 - json.length);

      await small.http.post('/accounts').set('Content-Type', 'application/json').send(atLimit).expect(201);
      const refused = await small.http.post('/accounts').set('Content-Type', 'application/json').send(overLimit);
      expectProblem(refused, 413, 'PAYLOAD_TOO_LARGE');
      const [{ count }] = await small.dataSource.query('SELECT count(*)::int AS count FROM events');
      expect(count).toBe(1);
    } finally {
      await small.close();
    }
  });

  it.each([
    ['text/plain', 'hello'],
    ['application/x-www-form-urlencoded', 'ownerName=Ada&currency=EUR'],
    ['application/xml', '<account/>'],
  ])('a %s body is 415 UNSUPPORTED_MEDIA_TYPE', async (contentType, body) => {
    const before = await stateOf();
    const response = await t.http.post('/accounts').set('Content-Type', contentType).send(body);
    expectProblem(response, 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect(await stateOf()).toEqual(before);
  });

  it('a text/plain body on a command of an existing account is 415 and writes nothing', async () => {
    const { id } = await openWith(100);
    const before = await stateOf(id);
    const response = await t.http.post(`/accounts/${id}/withdrawals`).set('Content-Type', 'text/plain').send('{"amount":10}');
    expectProblem(response, 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect(await stateOf(id)).toEqual(before);
  });

  it('accepts a JSON body labelled application/json with a charset, and a +json media type', async () => {
    await t.http.post('/accounts').set('Content-Type', 'application/json; charset=utf-8').send('{"ownerName":"Ada","currency":"EUR"}').expect(201);
    await t.http.post('/accounts').set('Content-Type', 'application/vnd.ledger+json').send('{"ownerName":"Ada","currency":"EUR"}').expect(201);
  });

  it.each([
    ['GET', '/nope'],
    ['GET', '/accounts/'.concat(randomUUID(), '/nope')],
    ['POST', '/refunds'],
    ['PUT', `/accounts/${randomUUID()}`],
    ['DELETE', `/accounts/${randomUUID()}`],
    ['PATCH', '/accounts'],
  ])('an unknown route (%s %s) is a 404 problem', async (method, path) => {
    const response = await t.http[method.toLowerCase() as 'get' | 'post' | 'put' | 'delete' | 'patch'](path);
    expectProblem(response, 404, 'ROUTE_NOT_FOUND');
  });

  it('no answer carries an Express content-hash ETag: only commands and GET /accounts/{id} have one, and it is the version', async () => {
    const { id, position } = await openWith(10);
    const answers = await Promise.all([
      reflecting(t.http.get('/accounts'), position),
      reflecting(t.http.get(`/accounts/${id}/transactions`), position, 'header'),
      t.http.get(`/accounts/${id}/events`),
      t.http.get('/nope'),
      t.http.get(`/accounts/${randomUUID()}`),
      t.http.get(`/accounts/${randomUUID()}/transactions`),
      t.http.get('/accounts/not-a-uuid'),
      t.http.get('/accounts?limit=0'),
      t.http.get(`/accounts/${id}?minPosition=x`),
      t.http.get(`/accounts/${id}/transactions`).set('X-Min-Position', '-1'),
      t.http.post(`/accounts/${id}/withdrawals`).send({ amount: 11 }),
      t.http.post('/accounts').set('Content-Type', 'application/json').send('{'),
      t.http.post('/accounts').set('Content-Type', 'text/plain').send('x'),
    ]);
    for (const answer of answers) expect(answer.headers.etag).toBeUndefined();
    for (const answer of answers.slice(0, 3)) expect(answer.status).toBe(200);
    for (const answer of answers.slice(3)) expect(answer.status).toBeGreaterThanOrEqual(400);
    expect((await getAccount(id, position)).headers.etag).toBe('"2"');
  });
});
