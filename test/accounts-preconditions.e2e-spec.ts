import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type Opened, accountsApi, expectProblem } from './support/accounts-api.js';
import { reflecting } from './support/read-your-writes.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// Preconditions of the account commands: If-Match (optimistic concurrency over HTTP), unknown
// accounts and invalid ids on every route.
// The app exactly as main.ts builds it, on a fresh database of a real PostgreSQL (support/accounts-api.ts).

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const { open, deposit, withdraw, openWith, getAccount, stateOf } = accountsApi(() => t);

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

  it.each(routes.filter(([route]) => route.startsWith('POST')))(
    '%s with If-Match on an unknown account is still 404 (never creates it)',
    async (_route, send) => {
      const id = randomUUID();
      expectProblem(await send(id).set('If-Match', '"1"'), 404, 'ACCOUNT_NOT_FOUND');
      expectProblem(await t.http.get(`/accounts/${id}/events`), 404, 'ACCOUNT_NOT_FOUND');
    },
  );

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
    const movements = (await reflecting(t.http.get(`/accounts/${upper}/transactions`), closed.body.position, 'header').expect(200)).body
      .items;
    expect(movements.map((movement: { position: number }) => movement.position)).toEqual([
      withdrawn.body.position,
      deposited.body.position,
      position,
    ]);
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
