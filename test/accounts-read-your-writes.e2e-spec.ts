import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { accountsApi, expectProblem } from './support/accounts-api.js';
import { untilNothingHeldBack } from './support/projection-fixtures.js';
import { type Via, projectionPosition, reflecting } from './support/read-your-writes.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// Read-your-writes on the account read models: minPosition, X-Min-Position, X-Projection-Position.
// The app exactly as main.ts builds it, on a fresh database of a real PostgreSQL (support/accounts-api.ts).

let t: TestApp;
beforeAll(async () => {
  // Four segments per projection: a read must wait for every segment (the write is in one of them).
  t = await startTestApp({ PROJECTION_SEGMENTS: '4' });
});
afterAll(() => t.close());

const { open, deposit, withdraw, openWith, getAccount } = accountsApi(() => t);

describe('read-your-writes: minPosition, X-Min-Position and X-Projection-Position', () => {
  const owner = () => `Reader ${randomUUID()}`;

  it.each(['query', 'header'] as const)(
    'a GET right after a command, given its position (as %s), reflects it on every projection-backed route',
    async (via) => {
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
        expect(movements.body.items).toEqual([
          expect.objectContaining({ type: 'deposit', amount: 10, balanceAfter: balance, position: again.body.position }),
        ]);
        expect(projectionPosition(movements)).toBeGreaterThanOrEqual(again.body.position);
      }
    },
  );

  it('GET /admin/projections shows every segment (owner, checkpoint, lag, status) and keeps the projection-level fields', async () => {
    const { id } = await open();
    const last = await deposit(id, 3);
    await getAccount(id, last.body.position);
    const status = await t.http.get('/admin/projections').expect(200);
    const summary = status.body.items.find((item: { name: string }) => item.name === 'account-summary');
    expect(summary).toMatchObject({ mode: 'async', status: 'running', runner: expect.any(String) });
    expect(summary.segments).toHaveLength(4);
    expect(summary.segments.map((segment: { segment: number }) => segment.segment)).toEqual([0, 1, 2, 3]);
    for (const segment of summary.segments) {
      expect(segment).toMatchObject({ status: 'running', runner: expect.any(String), attempts: 0 });
      expect(segment.checkpoint.position).toBeGreaterThanOrEqual(summary.checkpoint.position);
    }
    // The projection's lag is the largest of its segments' (what metrics read).
    expect(summary.lagEvents).toBe(Math.max(...summary.segments.map((segment: { lagEvents: number }) => segment.lagEvents)));
    expect(summary.checkpoint.position).toBeGreaterThanOrEqual(last.body.position);
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
    expect(
      expectProblem(await reflecting(t.http.get(`/accounts/${id}/transactions`), position, 'header'), 404, 'ACCOUNT_NOT_FOUND').accountId,
    ).toBe(id);
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

  it.each(PROJECTION_GETS)(
    '%s refuses an invalid minPosition with 400 INVALID_MIN_POSITION, as query parameter and as header',
    async (_route, path) => {
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
    },
  );

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
    ] as const)(
      '%s answers 503 PROJECTION_NOT_CAUGHT_UP with Retry-After after READ_YOUR_WRITES_TIMEOUT_MS',
      async (_route, projection, path) => {
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
      },
    );

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
      // The 3 s reads are timed from when commit-safe readers can see the write: a transaction of
      // another test file (the horizon is server-wide) may hold it back longer than that.
      await untilNothingHeldBack(held.dataSource);
      await reflecting(held.http.get(`/accounts/${opened.body.id}`), opened.body.position).expect(200);

      const holder = held.dataSource.createQueryRunner();
      await holder.connect();
      try {
        await holder.startTransaction();
        await holder.query('SELECT pg_current_xact_id()'); // a write transaction's xid, older than the deposit's
        const deposited = await held.http.post(`/accounts/${opened.body.id}/deposits`).send({ amount: 5 }).expect(200);
        await new Promise((resolve) => setTimeout(resolve, 100)); // the deposit's NOTIFY has been delivered
        await holder.commitTransaction();
        await untilNothingHeldBack(held.dataSource); // this test's holder is gone; another file's may not be yet

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
