import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { accountsApi, UUID, ISO_DATE } from './support/accounts-api.js';
import { TEST_SUBJECT } from './support/auth.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// GET /accounts/{id}/events: the account's own stream, read from the event store; correlation ids.
// The app exactly as main.ts builds it, on a fresh database of a real PostgreSQL (support/accounts-api.ts).

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const { open, historyOf } = accountsApi(() => t);

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
