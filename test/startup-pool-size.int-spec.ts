import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { type TestApp, startTestApp } from './support/test-app.js';

/**
 * DATABASE_POOL_SIZE=1 used to hang the start: the migrations ran on the service's pool, where the
 * migration lock held the only connection. They run on a connection of their own now.
 */
let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ DATABASE_POOL_SIZE: '1', PROJECTIONS_ENABLED: 'false' });
});

afterAll(async () => {
  await t?.close();
});

it('starts with a pool of one connection, migrated, and serves a command and its history', async () => {
  const opened = await t.http.post('/accounts').send({ ownerName: 'Solo', currency: 'EUR' }).expect(201);
  await t.http.post(`/accounts/${opened.body.id}/deposits`).send({ amount: 5 }).expect(200);
  const history = await t.http.get(`/accounts/${opened.body.id}/events`).expect(200);
  expect(history.body.items.map((event: { type: string }) => event.type)).toEqual(['accounts.AccountOpened', 'accounts.MoneyDeposited']);
});
