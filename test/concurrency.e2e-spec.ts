import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Response, Test } from 'supertest';
import { accountStreamId } from '../src/accounts/account.js';
import { type Via, lastPosition, projectionPosition, reflecting } from './support/read-your-writes.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// Truly concurrent commands over HTTP against a real PostgreSQL: every request is started (Promise.all
// subscribes to all of them) before any answer is awaited, so they race through the command runner,
// the pool and the UNIQUE(stream_id, version) constraint. The default configuration is used
// (COMMAND_MAX_ATTEMPTS = 10, DATABASE_POOL_SIZE = 10), as main.ts would.
// The read model (account_summaries) is kept asynchronously: every read of it that must reflect the
// race passes the position of the last successful command as minPosition (query or header).

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
  // Listen once for the whole file, so that concurrent requests share one server rather than each
  // relying on supertest to start and stop it.
  await t.app.listen(0, '127.0.0.1');
});
afterAll(() => t.close());

async function open(): Promise<{ id: string; position: number }> {
  const response = await t.http.post('/accounts').send({ ownerName: 'Racer', currency: 'EUR' }).expect(201);
  return { id: response.body.id, position: response.body.position };
}

/** GET /accounts/{id} once the read model has applied the event at `position`. */
async function readAccount(id: string, position: number, via: Via = 'query'): Promise<Record<string, any>> {
  const response = await reflecting(t.http.get(`/accounts/${id}`), position, via);
  expect(response.status).toBe(200);
  expect(response.headers.etag).toBe(`"${response.body.version}"`);
  return response.body;
}

/** Starts every request before awaiting any of them. */
function race(requests: Test[]): Promise<Response[]> {
  return Promise.all(requests);
}

function statuses(responses: Response[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const response of responses) counts[response.status] = (counts[response.status] ?? 0) + 1;
  return counts;
}

interface StoredEvent {
  type: string;
  version: number;
  data: { amount?: number; balanceAfter?: number };
}

async function storedEvents(id: string): Promise<StoredEvent[]> {
  return t.dataSource.query('SELECT type, version, data FROM events WHERE stream_id = $1 ORDER BY version', [accountStreamId(id)]);
}

/**
 * Replays the stream independently of the application code: versions are gapless from 1, every
 * balanceAfter is the previous balance plus or minus the amount, and never negative.
 */
function replay(events: StoredEvent[]): number {
  let balance = 0;
  events.forEach((event, index) => {
    expect(event.version).toBe(index + 1);
    if (event.type === 'accounts.MoneyDeposited') balance += event.data.amount!;
    if (event.type === 'accounts.MoneyWithdrawn') balance -= event.data.amount!;
    if (event.data.balanceAfter !== undefined) expect(event.data.balanceAfter).toBe(balance);
    expect(balance).toBeGreaterThanOrEqual(0);
  });
  return balance;
}

/**
 * The balance of the account's read-model row, read once the projection has applied the event at
 * `position` (the last successful command): its version must then be the stream's.
 */
async function summaryBalance(id: string, position: number): Promise<number> {
  const read = await reflecting(t.http.get(`/accounts/${id}`), position, 'header');
  expect(read.status).toBe(200);
  const [row] = await t.dataSource.query('SELECT balance::text AS balance, version FROM account_summaries WHERE id = $1', [id]);
  const events = await storedEvents(id);
  expect(row.version).toBe(events.length);
  expect({ balance: Number(row.balance), version: row.version }).toEqual({ balance: read.body.balance, version: read.body.version });
  return Number(row.balance);
}

describe('concurrent commands on one account', () => {
  it('50 concurrent withdrawals of 10 from 100: exactly 10 succeed, the balance ends at 0', async () => {
    const { id } = await open();
    const funded = await t.http.post(`/accounts/${id}/deposits`).send({ amount: 100 }).expect(200);

    const responses = await race(Array.from({ length: 50 }, () => t.http.post(`/accounts/${id}/withdrawals`).send({ amount: 10 })));

    const counts = statuses(responses);
    expect(counts[200]).toBe(10);
    expect((counts[422] ?? 0) + (counts[409] ?? 0)).toBe(40);
    for (const response of responses) {
      if (response.status === 422) expect(response.body.code).toBe('ACCOUNT_INSUFFICIENT_FUNDS');
      else if (response.status === 409) expect(response.body.code).toBe('CONCURRENCY_CONFLICT');
      else expect(response.status).toBe(200);
    }
    // Each success took its own version, and answered it as its ETag.
    const won = responses.filter((response) => response.status === 200);
    expect(won.map((response) => response.body.version).sort((a, b) => a - b)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(won.map((response) => response.headers.etag).sort()).toEqual(won.map((response) => `"${response.body.version}"`).sort());
    expect(new Set(won.map((response) => response.body.position)).size).toBe(10);

    const position = lastPosition([funded, ...responses]);
    expect(await readAccount(id, position)).toMatchObject({ balance: 0, version: 12 });
    const events = await storedEvents(id);
    expect(events.filter((event) => event.type === 'accounts.MoneyWithdrawn')).toHaveLength(10);
    expect(events).toHaveLength(12);
    expect(replay(events)).toBe(0);
    expect(await summaryBalance(id, position)).toBe(replay(events));
  });

  it('concurrent deposits without If-Match all succeed (retried internally) and sum exactly', async () => {
    const { id } = await open();
    // 10 racers at COMMAND_MAX_ATTEMPTS = 10: each lost attempt is another racer's success, so no
    // racer can lose 10 times and all must succeed. Powers of two: the sum shows which ones landed.
    const amounts = Array.from({ length: 10 }, (_, index) => 2 ** index);

    const responses = await race(amounts.map((amount) => t.http.post(`/accounts/${id}/deposits`).send({ amount })));

    expect(statuses(responses)).toEqual({ 200: 10 });
    expect(responses.map((response) => response.body.version).sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    for (const response of responses) expect(response.headers.etag).toBe(`"${response.body.version}"`);
    const position = lastPosition(responses);
    expect(await readAccount(id, position, 'header')).toMatchObject({ balance: 1023, version: 11 });

    const events = await storedEvents(id);
    expect(
      events
        .filter((event) => event.type === 'accounts.MoneyDeposited')
        .map((event) => event.data.amount)
        .sort((a, b) => a! - b!),
    ).toEqual(amounts);
    expect(replay(events)).toBe(1023);
    expect(await summaryBalance(id, position)).toBe(1023);
  });

  it('concurrent commands all carrying the same If-Match: exactly one 200, the rest 412 with the new ETag', async () => {
    const { id } = await open();
    const funded = await t.http.post(`/accounts/${id}/deposits`).send({ amount: 1000 }).expect(200);
    const amounts = Array.from({ length: 20 }, (_, index) => 2 ** index);

    const responses = await race(
      amounts.map((amount, index) =>
        index % 2 === 0
          ? t.http.post(`/accounts/${id}/deposits`).set('If-Match', '"2"').send({ amount })
          : t.http.post(`/accounts/${id}/withdrawals`).set('If-Match', '"2"').send({ amount: 1 }),
      ),
    );

    expect(statuses(responses)).toEqual({ 200: 1, 412: 19 });
    const [winner] = responses.filter((response) => response.status === 200);
    expect(winner.body.version).toBe(3);
    expect(winner.headers.etag).toBe('"3"');
    for (const loser of responses.filter((response) => response.status === 412)) {
      expect(loser.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(loser.body).toMatchObject({ code: 'VERSION_MISMATCH', currentVersion: 3 });
      expect(loser.headers.etag).toBe('"3"');
    }

    const events = await storedEvents(id);
    expect(events).toHaveLength(3);
    expect(replay(events)).toBe(await summaryBalance(id, lastPosition([funded, ...responses])));
    expect(await readAccount(id, winner.body.position)).toMatchObject({ version: 3, balance: replay(events) });
  });

  it('a close racing a deposit on an empty account: never both, and the state matches the winner', async () => {
    const rounds = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const { id } = await open();
        const [closed, deposited] = await race([
          t.http.post(`/accounts/${id}/close`),
          t.http.post(`/accounts/${id}/deposits`).send({ amount: 5 }),
        ]);
        return { id, closed, deposited };
      }),
    );

    for (const [round, { id, closed, deposited }] of rounds.entries()) {
      const account = await readAccount(id, lastPosition([closed, deposited]), round % 2 === 0 ? 'query' : 'header');
      const events = await storedEvents(id);
      if (closed.status === 200) {
        expect(deposited.status).toBe(422);
        expect(deposited.body.code).toBe('ACCOUNT_CLOSED');
        expect(account).toMatchObject({ status: 'closed', balance: 0, version: 2 });
      } else {
        expect({ closed: closed.status, code: closed.body.code, deposited: deposited.status }).toEqual({
          closed: 422,
          code: 'ACCOUNT_BALANCE_NOT_ZERO',
          deposited: 200,
        });
        expect(account).toMatchObject({ status: 'open', balance: 5, version: 2 });
      }
      expect(events).toHaveLength(2);
      expect(replay(events)).toBe(account.balance);
    }
  });

  it('concurrent commands on different accounts do not interfere', async () => {
    const ids = (await Promise.all(Array.from({ length: 10 }, () => open()))).map((opened) => opened.id);
    expect(new Set(ids).size).toBe(10);

    const responses = await race(
      ids.flatMap((id) => [
        t.http.post(`/accounts/${id}/deposits`).send({ amount: 30 }),
        t.http.post(`/accounts/${id}/deposits`).send({ amount: 12 }),
      ]),
    );

    expect(statuses(responses)).toEqual({ 200: 20 });
    for (const [index, id] of ids.entries()) {
      const position = lastPosition(responses.filter((response) => response.body.id === id));
      expect(await readAccount(id, position, index % 2 === 0 ? 'query' : 'header')).toMatchObject({ balance: 42, version: 3 });
      expect(await summaryBalance(id, position)).toBe(replay(await storedEvents(id)));
    }
  });

  it('every racer reads its own write: concurrent command-then-query chains given their positions', async () => {
    const { id } = await open();
    // 10 racers (COMMAND_MAX_ATTEMPTS = 10, see above), each reading right after its own deposit.
    const chains = await Promise.all(
      Array.from({ length: 10 }, async (_, index) => {
        const deposited = await t.http.post(`/accounts/${id}/deposits`).send({ amount: 2 ** index });
        expect(deposited.status).toBe(200);
        const via: Via = index % 2 === 0 ? 'query' : 'header';
        const [account, movements] = await Promise.all([
          reflecting(t.http.get(`/accounts/${id}`), deposited.body.position, via),
          reflecting(t.http.get(`/accounts/${id}/transactions`).query({ limit: 100 }), deposited.body.position, via),
        ]);
        return { deposited, account, movements };
      }),
    );

    for (const { deposited, account, movements } of chains) {
      expect(account.status).toBe(200);
      // The read model applies a stream in version order: at least this racer's version means its deposit is in.
      expect(account.body.version).toBeGreaterThanOrEqual(deposited.body.version);
      expect(account.headers.etag).toBe(`"${account.body.version}"`);
      projectionPosition(account);
      expect(movements.status).toBe(200);
      expect(movements.body.items.map((item: { position: number }) => item.position)).toContain(deposited.body.position);
      projectionPosition(movements);
    }
    const position = lastPosition(chains.map((chain) => chain.deposited));
    expect(await readAccount(id, position)).toMatchObject({ balance: 1023, version: 11 });
    expect(await summaryBalance(id, position)).toBe(replay(await storedEvents(id)));
  });
});
