import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { type TestApp, startTestApp } from './support/test-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

it('opens an account', async () => {
  const response = await t.http.post('/accounts').send({ ownerName: 'Ada', currency: 'EUR' }).expect(201);
  expect(response.headers.etag).toBe('"1"');
});
