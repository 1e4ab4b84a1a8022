import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import type { Response, Test } from 'supertest';
import { TEST_SUBJECT, testToken } from './support/auth.js';
import { LedgerClient, expectProblem } from './support/ledger-client.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// Idempotency-Key on every POST, end to end over HTTP against a real PostgreSQL:
// - the same key with the same request → the original answer replayed (status, Location/ETag, body)
//   with Idempotent-Replayed: true, and nothing appended again;
// - the same key with another body or path → 422 IDEMPOTENCY_KEY_REUSED;
// - the same key while the first request is still running → 409 IDEMPOTENCY_KEY_IN_USE;
// - an invalid key → 400; a refused request stores no key (its retry is decided afresh).
// "Still running" is made deterministic by holding the first request inside its append: this test
// holds, in a transaction of its own, the row the request's append must insert (the stream's next
// version), so the request waits on the unique index until the test lets it go.

let t: TestApp;
let ledger: LedgerClient;
let db: pg.Client;
beforeAll(async () => {
  t = await startTestApp();
  await t.app.listen(0, '127.0.0.1'); // one server for the concurrent requests of this file
  ledger = new LedgerClient(t);
  db = new pg.Client({ connectionString: t.database.url });
  await db.connect();
});
afterAll(async () => {
  await db.end();
  await t.close();
});

const key = () => `test-${randomUUID()}`;

function withKey(request: Test, idempotencyKey: string): Test {
  return request.set('Idempotency-Key', idempotencyKey);
}

async function eventsOf(streamId: string): Promise<Array<{ type: string; version: number }>> {
  return t.dataSource.query('SELECT type, version FROM events WHERE stream_id = $1 ORDER BY version', [streamId]);
}

/** Rows stored for the test client's key (keys are stored per client: [subject, key]). */
async function storedKey(idempotencyKey: string): Promise<number> {
  const [row] = await t.dataSource.query('SELECT count(*)::int AS count FROM idempotency_keys WHERE key = $1', [
    JSON.stringify([TEST_SUBJECT, idempotencyKey]),
  ]);
  return row.count;
}

/** The parts of an answer a replay must reproduce. */
function answerOf(response: Response) {
  return { status: response.status, location: response.headers.location, etag: response.headers.etag, body: response.body };
}

function expectReplayOf(replay: Response, original: Response): void {
  expect(answerOf(replay)).toEqual(answerOf(original));
  expect(replay.headers['idempotent-replayed']).toBe('true');
}

/**
 * Holds the next append to `streamId` (at version `nextVersion`) until `release` is called: a row at
 * that version, inserted by a transaction of the test and never committed, makes the request's own
 * insert wait on UNIQUE(stream_id, version).
 */
async function holdNextAppend(streamId: string, nextVersion: number): Promise<{ release(): Promise<void> }> {
  const blocker = new pg.Client({ connectionString: t.database.url });
  await blocker.connect();
  await blocker.query('BEGIN');
  await blocker.query(
    `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
     VALUES ($1, $2, 'test.AppendBlocker', 1, $3, '{}', '{}')`,
    [streamId, nextVersion, randomUUID()],
  );
  return {
    async release() {
      await blocker.query('ROLLBACK');
      await blocker.end();
    },
  };
}

/** Waits until a session of the test database whose statement matches `pattern` waits on a lock (the held request). */
async function untilARequestWaitsOnALock(pattern = '%INSERT INTO events%', sessions = 1, orElse = () => false): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (orElse()) return;
    const { rows } = await db.query(
      `SELECT count(*)::int AS count FROM pg_stat_activity
       WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1 AND pid <> pg_backend_pid()`,
      [pattern],
    );
    if (rows[0].count >= sessions) return;
    if (Date.now() > deadline) throw new Error('no request ever waited on the held append');
    await sleep(10);
  }
}

describe('the same key and the same request: the original answer, replayed', () => {
  it('POST /accounts: 201, the same id, Location and ETag, nothing opened twice', async () => {
    const k = key();
    const body = { ownerName: 'Grace Hopper', currency: 'EUR' };
    const first = await withKey(t.http.post('/accounts'), k).send(body);
    expect(first.status).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const total = await ledger.totalEvents();

    const replay = await withKey(t.http.post('/accounts'), k).send({ currency: 'EUR', ownerName: 'Grace Hopper' }); // same body, other key order
    expectReplayOf(replay, first);
    expect(replay.headers.location).toBe(`/accounts/${first.body.id}`);
    expect(replay.headers.etag).toBe('"1"');
    expect(await ledger.totalEvents()).toBe(total);
    expect(await eventsOf(`account-${first.body.id}`)).toEqual([{ type: 'accounts.AccountOpened', version: 1 }]);
  });

  it('a deposit: 200 with the original ETag and body, the money deposited once, even after the account moved on', async () => {
    const account = await ledger.open();
    const k = key();
    const first = await withKey(t.http.post(`/accounts/${account.id}/deposits`), k).send({ amount: 500 });
    expect(first.status).toBe(200);
    expect(first.headers.etag).toBe('"2"');
    await ledger.deposit(account.id, 1); // the account moves on to version 3

    const replay = await withKey(t.http.post(`/accounts/${account.id}/deposits`), k).send({ amount: 500 });
    expectReplayOf(replay, first);
    expect(replay.body).toEqual({ id: account.id, version: 2, position: first.body.position });
    expect((await eventsOf(`account-${account.id}`)).map((event) => event.type)).toEqual([
      'accounts.AccountOpened',
      'accounts.MoneyDeposited',
      'accounts.MoneyDeposited',
    ]);
    expect((await ledger.account(account.id)).balance).toBe(501);
  });

  it('a transfer: 202 with the same transfer id and Location, one transfer, the money moved once', async () => {
    const source = await ledger.openWith(1000);
    const target = await ledger.open();
    const k = key();
    const body = { fromAccountId: source.id, toAccountId: target.id, amount: 300 };
    const first = await withKey(t.http.post('/transfers'), k).send(body);
    expect(first.status).toBe(202);
    const replays: Response[] = [];
    for (let i = 0; i < 3; i++) replays.push(await withKey(t.http.post('/transfers'), k).send(body));
    for (const replay of replays) expectReplayOf(replay, first);
    expect(replays[0].headers.location).toBe(`/transfers/${first.body.id}`);
    await ledger.settled(first.body.id);
    const [{ count }] = await t.dataSource.query(
      `SELECT count(*)::int AS count FROM events WHERE type = 'transfers.TransferRequested' AND data->>'fromAccountId' = $1`,
      [source.id],
    );
    expect(count).toBe(1);
    expect((await ledger.account(source.id)).balance).toBe(700);
    expect((await ledger.account(target.id)).balance).toBe(300);
    // one debit, one settlement, one credit
    expect(await ledger.legs(source.id, first.body.id)).toEqual(['accounts.TransferDebited', 'accounts.TransferSettled']);
    expect(await ledger.legs(target.id, first.body.id)).toEqual(['accounts.TransferCredited']);
  });

  it('a close (no body): 200 replayed, the account closed once', async () => {
    const account = await ledger.open();
    const k = key();
    const first = await withKey(t.http.post(`/accounts/${account.id}/close`), k);
    expect(first.status).toBe(200);
    const replay = await withKey(t.http.post(`/accounts/${account.id}/close`), k);
    expectReplayOf(replay, first); // not 422 ACCOUNT_CLOSED: the command is not decided again
    expect((await eventsOf(`account-${account.id}`)).map((event) => event.type)).toEqual([
      'accounts.AccountOpened',
      'accounts.AccountClosed',
    ]);
  });
});

describe('replays of a finished request', () => {
  // Regression (src/shared/idempotency/idempotency.interceptor.ts): the key's advisory lock used to be
  // taken before the stored answer was looked up, and a replay held it too. Two replays of a request
  // that finished long ago, arriving together (a client retrying on a timeout from two workers),
  // contended for the lock: one was replayed, the other got 409 IDEMPOTENCY_KEY_IN_USE ("still being
  // processed"), although nothing with that key was running. A finished request is now looked up
  // first and replayed without the lock. Here one replay is held inside its lookup (the test locks
  // idempotency_keys) so that the overlap is certain; and the second one must wait on that lookup
  // too rather than be answered at once (which only a lock taken before the lookup could do).
  it('replays to every retry, even two at once: none is 409 while nothing with the key is running', async () => {
    const account = await ledger.open();
    const k = key();
    const original = await withKey(t.http.post(`/accounts/${account.id}/deposits`), k).send({ amount: 10 });
    expect(original.status).toBe(200);
    const lock = new pg.Client({ connectionString: t.database.url });
    await lock.connect();
    let held: Promise<Response> | undefined;
    let second: Response;
    try {
      await lock.query('BEGIN');
      await lock.query('LOCK TABLE idempotency_keys IN ACCESS EXCLUSIVE MODE');
      held = withKey(t.http.post(`/accounts/${account.id}/deposits`), k)
        .send({ amount: 10 })
        .then((response) => response);
      await untilARequestWaitsOnALock('%idempotency_keys%');
      let answered = false;
      const pending = withKey(t.http.post(`/accounts/${account.id}/deposits`), k)
        .send({ amount: 10 })
        .then((response) => {
          answered = true;
          return response;
        });
      // the second one waits on the lookup as well: nothing answers it before the stored answer is read
      await untilARequestWaitsOnALock('%idempotency_keys%', 2, () => answered);
      expect(answered).toBe(false);
      await lock.query('COMMIT');
      second = await pending;
    } finally {
      await lock.end();
    }
    expectReplayOf(await held!, original);
    expectReplayOf(second, original);
    expect((await eventsOf(`account-${account.id}`)).filter((event) => event.type === 'accounts.MoneyDeposited')).toHaveLength(1);
  });

  it('many replays of a finished transfer at once: every one is the replay, none is 409, nothing runs again', async () => {
    const source = await ledger.openWith(1000);
    const target = await ledger.open();
    const k = key();
    const body = { fromAccountId: source.id, toAccountId: target.id, amount: 300 };
    const original = await withKey(t.http.post('/transfers'), k).send(body);
    expect(original.status).toBe(202);
    await ledger.settled(original.body.id);
    const total = await ledger.totalEvents();
    const replays = await Promise.all(
      Array.from({ length: 12 }, () =>
        withKey(t.http.post('/transfers'), k)
          .send(body)
          .then((response) => response),
      ),
    );
    for (const replay of replays) expectReplayOf(replay, original);
    expect(await ledger.totalEvents()).toBe(total);
    expect(await ledger.legs(source.id, original.body.id)).toEqual(['accounts.TransferDebited', 'accounts.TransferSettled']);
  });
});

describe('the same key for another request: 422 IDEMPOTENCY_KEY_REUSED, nothing written', () => {
  it('another body on the same path', async () => {
    const account = await ledger.open();
    const k = key();
    expect((await withKey(t.http.post(`/accounts/${account.id}/deposits`), k).send({ amount: 500 })).status).toBe(200);
    const total = await ledger.totalEvents();
    expectProblem(await withKey(t.http.post(`/accounts/${account.id}/deposits`), k).send({ amount: 501 }), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect(await ledger.totalEvents()).toBe(total);
  });

  it('is per client: another subject with the same key and request executes its own, and replays get each their own answer', async () => {
    const account = await ledger.open();
    const k = key();
    const as = (subject: string) =>
      withKey(t.http.post(`/accounts/${account.id}/deposits`), k).set('Authorization', `Bearer ${testToken(undefined, subject)}`);
    const first = await as('client-a').send({ amount: 100 });
    const second = await as('client-b').send({ amount: 100 });
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(second.headers['idempotent-replayed']).toBeUndefined();
    expect(second.body.version).toBe(first.body.version + 1); // executed, not replayed
    expect((await ledger.account(account.id)).balance).toBe(200);
    const replayA = await as('client-a').send({ amount: 100 });
    const replayB = await as('client-b').send({ amount: 100 });
    expect([replayA.headers['idempotent-replayed'], replayB.headers['idempotent-replayed']]).toEqual(['true', 'true']);
    expect([replayA.body, replayB.body]).toEqual([first.body, second.body]);
    expect((await ledger.account(account.id)).balance).toBe(200);
  });

  it('the same body on another path (another account, another command)', async () => {
    const first = await ledger.open();
    const second = await ledger.open();
    const k = key();
    expect((await withKey(t.http.post(`/accounts/${first.id}/deposits`), k).send({ amount: 500 })).status).toBe(200);
    const total = await ledger.totalEvents();
    expectProblem(await withKey(t.http.post(`/accounts/${second.id}/deposits`), k).send({ amount: 500 }), 422, 'IDEMPOTENCY_KEY_REUSED');
    expectProblem(await withKey(t.http.post(`/accounts/${first.id}/withdrawals`), k).send({ amount: 500 }), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect(await ledger.totalEvents()).toBe(total);
    expect((await ledger.account(second.id)).balance).toBe(0);
  });

  it('a key of an account opening reused for a transfer', async () => {
    const k = key();
    expect((await withKey(t.http.post('/accounts'), k).send({ ownerName: 'Reuse', currency: 'EUR' })).status).toBe(201);
    const source = await ledger.openWith(100);
    const target = await ledger.open();
    const total = await ledger.totalEvents();
    const response = await withKey(t.http.post('/transfers'), k).send({ fromAccountId: source.id, toAccountId: target.id, amount: 10 });
    expectProblem(response, 422, 'IDEMPOTENCY_KEY_REUSED');
    expect(await ledger.totalEvents()).toBe(total);
  });
});

describe('the same key while the first request is still running: 409 IDEMPOTENCY_KEY_IN_USE', () => {
  it('answers 409 to the duplicate, then the first completes, then the key replays it', async () => {
    const account = await ledger.open();
    const k = key();
    const hold = await holdNextAppend(`account-${account.id}`, 2);
    let first: Promise<Response> | undefined;
    try {
      first = withKey(t.http.post(`/accounts/${account.id}/deposits`), k)
        .send({ amount: 700 })
        .then((response) => response);
      await untilARequestWaitsOnALock();
      const duplicate = await withKey(t.http.post(`/accounts/${account.id}/deposits`), k).send({ amount: 700 });
      expectProblem(duplicate, 409, 'IDEMPOTENCY_KEY_IN_USE');
      // even a different body is "in use" while the first runs: the key is locked before it is compared
      expectProblem(await withKey(t.http.post(`/accounts/${account.id}/deposits`), k).send({ amount: 1 }), 409, 'IDEMPOTENCY_KEY_IN_USE');
    } finally {
      await hold.release();
    }
    const original = await first!;
    expect(original.status).toBe(200);
    expect(original.headers['idempotent-replayed']).toBeUndefined();
    expectReplayOf(await withKey(t.http.post(`/accounts/${account.id}/deposits`), k).send({ amount: 700 }), original);
    expect((await eventsOf(`account-${account.id}`)).map((event) => event.type)).toEqual([
      'accounts.AccountOpened',
      'accounts.MoneyDeposited',
    ]);
  });

  it('identical requests sent at the same time: one executes, every other one is 409 or the replay, never a second execution', async () => {
    const account = await ledger.open();
    const k = key();
    const responses = await Promise.all(
      Array.from({ length: 12 }, () =>
        withKey(t.http.post(`/accounts/${account.id}/deposits`), k)
          .send({ amount: 250 })
          .then((response) => response),
      ),
    );
    const executed = responses.filter((response) => response.status === 200 && response.headers['idempotent-replayed'] === undefined);
    expect(executed).toHaveLength(1);
    for (const response of responses) {
      if (response === executed[0]) continue;
      if (response.status === 409) expectProblem(response, 409, 'IDEMPOTENCY_KEY_IN_USE');
      else expectReplayOf(response, executed[0]);
    }
    expect((await eventsOf(`account-${account.id}`)).filter((event) => event.type === 'accounts.MoneyDeposited')).toHaveLength(1);
    expect((await ledger.account(account.id)).balance).toBe(250);
  });

  it('identical transfers sent at the same time: one transfer, one debit', async () => {
    const source = await ledger.openWith(1000);
    const target = await ledger.open();
    const k = key();
    const body = { fromAccountId: source.id, toAccountId: target.id, amount: 400 };
    const responses = await Promise.all(
      Array.from({ length: 12 }, () =>
        withKey(t.http.post('/transfers'), k)
          .send(body)
          .then((response) => response),
      ),
    );
    const accepted = responses.filter((response) => response.status === 202);
    expect(accepted.length).toBeGreaterThanOrEqual(1);
    expect(new Set(accepted.map((response) => response.body.id)).size).toBe(1);
    expect(accepted.filter((response) => response.headers['idempotent-replayed'] === undefined)).toHaveLength(1);
    for (const response of responses.filter((response) => response.status !== 202)) expectProblem(response, 409, 'IDEMPOTENCY_KEY_IN_USE');
    const transfer = await ledger.settled(accepted[0].body.id);
    expect(transfer.status).toBe('completed');
    expect((await ledger.history(source.id)).filter((event) => event.type === 'accounts.TransferDebited')).toHaveLength(1);
    expect(await ledger.legs(source.id, accepted[0].body.id)).toEqual(['accounts.TransferDebited', 'accounts.TransferSettled']);
    expect((await ledger.account(source.id)).balance).toBe(600);
    expect((await ledger.account(target.id)).balance).toBe(400);
  });
});

describe('refused requests store no key: their retry is decided afresh', () => {
  it('a withdrawal refused for insufficient funds, retried with the same key after a deposit, executes', async () => {
    const account = await ledger.openWith(100);
    const k = key();
    const refused = await withKey(t.http.post(`/accounts/${account.id}/withdrawals`), k).send({ amount: 500 });
    expectProblem(refused, 422, 'ACCOUNT_INSUFFICIENT_FUNDS');
    expect(refused.headers['idempotent-replayed']).toBeUndefined();
    expect(await storedKey(k)).toBe(0);

    await ledger.deposit(account.id, 1000);
    const retried = await withKey(t.http.post(`/accounts/${account.id}/withdrawals`), k).send({ amount: 500 });
    expect(retried.status).toBe(200);
    expect(retried.headers['idempotent-replayed']).toBeUndefined();
    expect((await ledger.account(account.id)).balance).toBe(600);
    expect(await storedKey(k)).toBe(1);
    // and from now on the key replays that success
    expectReplayOf(await withKey(t.http.post(`/accounts/${account.id}/withdrawals`), k).send({ amount: 500 }), retried);
    expect((await ledger.account(account.id)).balance).toBe(600);
  });

  it('a 400 stores nothing: the same key with the corrected body then executes', async () => {
    const k = key();
    expectProblem(await withKey(t.http.post('/accounts'), k).send({ ownerName: 'Typo', currency: 'euro' }), 400, 'VALIDATION_FAILED');
    expect(await storedKey(k)).toBe(0);
    const corrected = await withKey(t.http.post('/accounts'), k).send({ ownerName: 'Typo', currency: 'EUR' });
    expect(corrected.status).toBe(201);
    expect(corrected.headers['idempotent-replayed']).toBeUndefined();
  });

  it('a transfer refused with 404 stores nothing', async () => {
    const source = await ledger.openWith(100);
    const k = key();
    const total = await ledger.totalEvents();
    expectProblem(
      await withKey(t.http.post('/transfers'), k).send({ fromAccountId: source.id, toAccountId: randomUUID(), amount: 10 }),
      404,
      'ACCOUNT_NOT_FOUND',
    );
    expect(await storedKey(k)).toBe(0);
    expect(await ledger.totalEvents()).toBe(total);
  });
});

describe('an invalid Idempotency-Key: 400 INVALID_IDEMPOTENCY_KEY, nothing written', () => {
  it.each([
    ['empty', ''],
    ['with a space', 'two words'],
    ['256 characters', 'k'.repeat(256)],
    ['not ASCII', 'clé-1'],
  ])('%s', async (_name, value) => {
    const account = await ledger.open();
    const total = await ledger.totalEvents();
    const response = await t.http.post(`/accounts/${account.id}/deposits`).set('Idempotency-Key', value).send({ amount: 10 });
    expectProblem(response, 400, 'INVALID_IDEMPOTENCY_KEY');
    expect(await ledger.totalEvents()).toBe(total);
  });

  it('255 visible ASCII characters are a valid key', async () => {
    const account = await ledger.open();
    const response = await t.http
      .post(`/accounts/${account.id}/deposits`)
      .set('Idempotency-Key', `~${'k'.repeat(254)}`)
      .send({ amount: 10 });
    expect(response.status).toBe(200);
  });
});
