import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { accountsApi, UUID, expectProblem, invalidFields } from './support/accounts-api.js';
import { reflecting } from './support/read-your-writes.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// Opening an account: POST /accounts, its answer and the validation of its body.
// The app exactly as main.ts builds it, on a fresh database of a real PostgreSQL (support/accounts-api.ts).

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const { open, getAccount, historyOf, stateOf } = accountsApi(() => t);

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
