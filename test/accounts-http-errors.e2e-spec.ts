import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { accountsApi, expectProblem } from './support/accounts-api.js';
import { reflecting } from './support/read-your-writes.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// Errors of the accounts API at the HTTP edge: problem+json, body limits, media types, no stray ETags.
// The app exactly as main.ts builds it, on a fresh database of a real PostgreSQL (support/accounts-api.ts).

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const { openWith, getAccount, stateOf } = accountsApi(() => t);

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
    await t.http
      .post('/accounts')
      .set('Content-Type', 'application/json; charset=utf-8')
      .send('{"ownerName":"Ada","currency":"EUR"}')
      .expect(201);
    await t.http
      .post('/accounts')
      .set('Content-Type', 'application/vnd.ledger+json')
      .send('{"ownerName":"Ada","currency":"EUR"}')
      .expect(201);
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
