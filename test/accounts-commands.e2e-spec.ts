import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { accountsApi, MAX_SAFE, expectProblem, invalidFields } from './support/accounts-api.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// Deposits, withdrawals and close: their answers, the balance they leave, and the business rules
// that refuse them (422, nothing written).
// The app exactly as main.ts builds it, on a fresh database of a real PostgreSQL (support/accounts-api.ts).

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const { open, deposit, withdraw, openWith, openClosed, getAccount, historyOf, stateOf } = accountsApi(() => t);

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
