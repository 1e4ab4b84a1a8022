import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AccountOpened, MoneyDeposited } from '../src/accounts/account.events.js';
import { EventStore, NO_STREAM } from '../src/event-sourcing/index.js';
import { LedgerClient, expectProblem } from './support/ledger-client.js';
import { projectionPosition } from './support/read-your-writes.js';
import { type TestApp, startTestApp } from './support/test-app.js';
import { TEST_SUBJECT } from './support/auth.js';

// The HTTP contract of transfers, end to end: the app exactly as main.ts builds it (createApp), on a
// fresh database of a real PostgreSQL, with its projections and the transfer process manager running.
// A transfer is asynchronous: POST answers 202 at once, the process then moves the money (debit of the
// source, credit of the target, then the settlement of the source — its money can no longer come back —
// or, if the credit is refused, its refund); tests wait for the outcome by polling GET /transfers/{id}
// (the contract's way), never by sleeping.
// Tests share the database, so each one works on accounts it opens itself.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

let t: TestApp;
let ledger: LedgerClient;
beforeAll(async () => {
  t = await startTestApp();
  ledger = new LedgerClient(t);
});
afterAll(() => t.close());

describe('POST /transfers', () => {
  it('accepts a transfer: 202, Location of its status resource, { id, status: pending, position }', async () => {
    const source = await ledger.openWith(1000);
    const target = await ledger.open();
    const response = await t.http
      .post('/transfers')
      .send({ fromAccountId: source.id, toAccountId: target.id, amount: 250, reference: 'Invoice 2026-117' });
    expect(response.status).toBe(202);
    expect(response.body).toEqual({ id: expect.stringMatching(UUID), status: 'pending', position: expect.any(Number) });
    expect(response.headers.location).toBe(`/transfers/${response.body.id}`);
    expect(response.body.position).toBeGreaterThan(source.position);
    // the position is the TransferRequested event's
    const [requested] = await t.dataSource.query('SELECT type, position FROM events WHERE stream_id = $1 AND version = 1', [
      `transfer-${response.body.id}`,
    ]);
    expect({ type: requested.type, position: Number(requested.position) }).toEqual({
      type: 'transfers.TransferRequested',
      position: response.body.position,
    });
    await ledger.settled(response.body.id);
  });

  it('a GET of the Location with the answered position as minPosition sees the transfer at once', async () => {
    const source = await ledger.openWith(1000);
    const target = await ledger.open();
    const accepted = await ledger.transfer(source.id, target.id, 100);
    const response = await t.http.get(accepted.response.headers.location).query({ minPosition: accepted.position });
    expect(response.status).toBe(200);
    expect(projectionPosition(response)).toBeGreaterThanOrEqual(accepted.position);
    expect(response.body).toEqual(expect.objectContaining({ id: accepted.id, status: expect.stringMatching(/^(pending|completed)$/) }));
    await ledger.settled(accepted.id);
  });

  it('completes: the amount leaves the source and reaches the target exactly once', async () => {
    const source = await ledger.openWith(1000);
    const target = await ledger.openWith(50);
    const accepted = await ledger.transfer(source.id, target.id, 300, { reference: 'Rent' });
    const transfer = await ledger.settled(accepted.id);
    expect(transfer).toEqual({
      id: accepted.id,
      fromAccountId: source.id,
      toAccountId: target.id,
      amount: 300,
      currency: 'EUR',
      reference: 'Rent',
      status: 'completed',
      failureCode: null,
      failureReason: null,
      refunded: false,
      requestedAt: expect.stringMatching(ISO_DATE),
      updatedAt: expect.stringMatching(ISO_DATE),
      completedAt: expect.stringMatching(ISO_DATE),
    });
    expect(transfer.completedAt >= transfer.requestedAt).toBe(true);
    expect((await ledger.account(source.id)).balance).toBe(700);
    expect((await ledger.account(target.id)).balance).toBe(350);
    expect((await ledger.history(source.id)).filter((event) => event.type === 'accounts.TransferDebited')).toHaveLength(1);
    expect((await ledger.history(target.id)).filter((event) => event.type === 'accounts.TransferCredited')).toHaveLength(1);
    // the source is settled exactly once, after the credit of the target, changing no balance
    expect(await ledger.legs(source.id, accepted.id)).toEqual(['accounts.TransferDebited', 'accounts.TransferSettled']);
    expect(await ledger.legs(target.id, accepted.id)).toEqual(['accounts.TransferCredited']);
    const sourceHistory = await ledger.history(source.id);
    const settlement = sourceHistory.find((event) => event.type === 'accounts.TransferSettled')!;
    expect(settlement.data).toEqual({ accountId: source.id, transferId: accepted.id, amount: 300 });
    const credit = (await ledger.history(target.id)).find((event) => event.type === 'accounts.TransferCredited')!;
    expect(settlement.position).toBeGreaterThan(credit.position);
    // the settlement is the source's latest event: its version (and ETag) and updatedAt moved with it
    const summary = await ledger.account(source.id);
    expect(summary.version).toBe(settlement.version);
    expect(summary.version).toBe(sourceHistory.length);
    expect(summary.updatedAt).toBe(settlement.metadata.occurredAt);
    expect((await t.http.get(`/accounts/${source.id}`)).headers.etag).toBe(`"${settlement.version}"`);
  });

  it('may move the whole balance of the source', async () => {
    const source = await ledger.openWith(400);
    const target = await ledger.open();
    const transfer = await ledger.settled((await ledger.transfer(source.id, target.id, 400)).id);
    expect(transfer.status).toBe('completed');
    expect((await ledger.account(source.id)).balance).toBe(0);
    expect((await ledger.account(target.id)).balance).toBe(400);
    // settled: nothing of it is in flight any more, so the emptied source may be closed
    expect(await ledger.legs(source.id, transfer.id)).toEqual(['accounts.TransferDebited', 'accounts.TransferSettled']);
    await ledger.close(source.id);
    expect((await ledger.account(source.id)).status).toBe('closed');
  });

  it("shows both legs in the accounts' transactions, typed and with the transfer id", async () => {
    const source = await ledger.openWith(1000);
    const target = await ledger.open();
    const accepted = await ledger.transfer(source.id, target.id, 120);
    await ledger.settled(accepted.id);
    const [out] = await ledger.transactions(source.id);
    const [incoming] = await ledger.transactions(target.id);
    const leg = ({ type, amount, balanceAfter, occurredAt, position, transferId }: Record<string, any>) => ({
      type,
      amount,
      balanceAfter,
      occurredAt,
      position,
      transferId,
    });
    expect(leg(out)).toEqual({
      type: 'transfer-out',
      amount: 120,
      balanceAfter: 880,
      occurredAt: expect.stringMatching(ISO_DATE),
      position: expect.any(Number),
      transferId: accepted.id,
    });
    expect(leg(incoming)).toEqual({
      type: 'transfer-in',
      amount: 120,
      balanceAfter: 120,
      occurredAt: expect.stringMatching(ISO_DATE),
      position: expect.any(Number),
      transferId: accepted.id,
    });
    expect(incoming.position).toBeGreaterThan(out.position);
    // the settlement of the source moves no money: it is no transaction
    expect((await ledger.transactions(source.id)).map((item) => item.type)).toEqual(['transfer-out', 'deposit']);
    expect((await ledger.transactions(target.id)).map((item) => item.type)).toEqual(['transfer-in']);
    expect(await ledger.legs(source.id, accepted.id)).toEqual(['accounts.TransferDebited', 'accounts.TransferSettled']);
  });

  describe('refuses invalid requests with 400 VALIDATION_FAILED naming the field, writing nothing', () => {
    const valid = () => ({ fromAccountId: randomUUID(), toAccountId: randomUUID(), amount: 100 });
    const sameId = randomUUID();
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['the same account on both sides', { fromAccountId: sameId, toAccountId: sameId, amount: 100 }, 'toAccountId'],
      ['a zero amount', { ...valid(), amount: 0 }, 'amount'],
      ['a negative amount', { ...valid(), amount: -100 }, 'amount'],
      ['a fractional amount', { ...valid(), amount: 10.5 }, 'amount'],
      ['an amount as a string', { ...valid(), amount: '100' }, 'amount'],
      ['an amount past 2^53 - 1', { ...valid(), amount: Number.MAX_SAFE_INTEGER + 2 }, 'amount'],
      ['a missing amount', { fromAccountId: randomUUID(), toAccountId: randomUUID() }, 'amount'],
      ['a missing source', { toAccountId: randomUUID(), amount: 100 }, 'fromAccountId'],
      ['a source that is not a UUID', { ...valid(), fromAccountId: 'acc-1' }, 'fromAccountId'],
      ['a target that is not a UUID', { ...valid(), toAccountId: 42 }, 'toAccountId'],
      ['an unknown field', { ...valid(), currency: 'EUR' }, 'currency'],
      ['an empty reference', { ...valid(), reference: '' }, 'reference'],
      ['a reference of 141 characters', { ...valid(), reference: 'x'.repeat(141) }, 'reference'],
      ['a reference with a control character', { ...valid(), reference: 'line\nbreak' }, 'reference'],
    ];
    it.each(cases)('%s', async (_name, body, field) => {
      const before = await ledger.totalEvents();
      const response = await t.http.post('/transfers').send(body);
      const problem = expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(problem.errors.map((error: { field: string }) => error.field)).toContain(field);
      expect(response.headers.location).toBeUndefined();
      expect(await ledger.totalEvents()).toBe(before);
    });
  });

  it('refuses an unknown source with 404 ACCOUNT_NOT_FOUND, writing nothing', async () => {
    const target = await ledger.open();
    const unknown = randomUUID();
    const before = await ledger.totalEvents();
    const response = await t.http.post('/transfers').send({ fromAccountId: unknown, toAccountId: target.id, amount: 100 });
    expect(expectProblem(response, 404, 'ACCOUNT_NOT_FOUND').detail).toContain(unknown);
    expect(await ledger.totalEvents()).toBe(before);
  });

  it('refuses an unknown target with 404 ACCOUNT_NOT_FOUND, writing nothing', async () => {
    const source = await ledger.openWith(1000);
    const unknown = randomUUID();
    const before = await ledger.totalEvents();
    const response = await t.http.post('/transfers').send({ fromAccountId: source.id, toAccountId: unknown, amount: 100 });
    expect(expectProblem(response, 404, 'ACCOUNT_NOT_FOUND').detail).toContain(unknown);
    expect(await ledger.totalEvents()).toBe(before);
    expect((await ledger.account(source.id)).balance).toBe(1000);
  });

  // Regression (src/transfers/request-transfer/request-transfer.request.ts): path ids are lower-cased
  // (uuid-param.pipe.ts: "UUIDs are case-insensitive, but stream ids are text"), body ids were not:
  // POST /transfers with the upper-case form of existing account ids looked up the stream
  // "account-<UPPER>" and answered 404 ACCOUNT_NOT_FOUND for accounts that exist. Body ids are now
  // lower-cased too, so the transfer, its legs and its listings all use the accounts' own ids.
  it('accepts account ids in upper case, as every path parameter does', async () => {
    const source = await ledger.openWith(1000);
    const target = await ledger.open();
    expect((await t.http.get(`/accounts/${source.id.toUpperCase()}/events`)).status).toBe(200); // paths accept it
    const response = await t.http
      .post('/transfers')
      .send({ fromAccountId: source.id.toUpperCase(), toAccountId: target.id.toUpperCase(), amount: 100 });
    expect(response.status).toBe(202);
    const transfer = await ledger.settled(response.body.id);
    expect({ from: transfer.fromAccountId, to: transfer.toAccountId, status: transfer.status }).toEqual({
      from: source.id,
      to: target.id,
      status: 'completed',
    });
    const [requested] = await t.dataSource.query('SELECT data FROM events WHERE stream_id = $1 AND version = 1', [
      `transfer-${response.body.id}`,
    ]);
    expect({ from: requested.data.fromAccountId, to: requested.data.toAccountId }).toEqual({ from: source.id, to: target.id });
    expect(await ledger.legs(source.id, response.body.id)).toEqual(['accounts.TransferDebited', 'accounts.TransferSettled']);
    expect(await ledger.legs(target.id, response.body.id)).toEqual(['accounts.TransferCredited']);
    expect((await ledger.account(source.id)).balance).toBe(900);
    expect((await ledger.account(target.id)).balance).toBe(100);
    const listed = await t.http.get(`/accounts/${source.id}/transfers`);
    expect(listed.body.items.map((item: { id: string }) => item.id)).toEqual([response.body.id]);
  });

  it('still refuses the same account on both sides when only the case differs', async () => {
    const account = await ledger.openWith(1000);
    const before = await ledger.totalEvents();
    const response = await t.http
      .post('/transfers')
      .send({ fromAccountId: account.id, toAccountId: account.id.toUpperCase(), amount: 100 });
    const problem = expectProblem(response, 400, 'VALIDATION_FAILED');
    expect(problem.errors.map((error: { field: string }) => error.field)).toContain('toAccountId');
    expect(await ledger.totalEvents()).toBe(before);
  });
});

describe('a transfer that cannot be made fails with a stable code', () => {
  it('insufficient funds: failed, ACCOUNT_INSUFFICIENT_FUNDS, nothing moved, no leg in any account', async () => {
    const source = await ledger.openWith(100);
    const target = await ledger.openWith(10);
    const accepted = await ledger.transfer(source.id, target.id, 101);
    const transfer = await ledger.settled(accepted.id);
    expect(transfer).toEqual(
      expect.objectContaining({
        status: 'failed',
        failureCode: 'ACCOUNT_INSUFFICIENT_FUNDS',
        failureReason: expect.stringMatching(/\S/),
        refunded: false,
        completedAt: expect.stringMatching(ISO_DATE),
      }),
    );
    expect((await ledger.account(source.id)).balance).toBe(100);
    expect((await ledger.account(target.id)).balance).toBe(10);
    expect((await ledger.transactions(source.id)).map((item) => item.type)).toEqual(['deposit']);
    expect((await ledger.transactions(target.id)).map((item) => item.type)).toEqual(['deposit']);
    expect(await ledger.legs(source.id, accepted.id)).toEqual([]); // nothing debited: nothing to settle or refund
    expect(await ledger.legs(target.id, accepted.id)).toEqual([]);
  });

  it('a closed source: failed, ACCOUNT_CLOSED, nothing moved', async () => {
    const source = await ledger.openClosed();
    const target = await ledger.open();
    const transfer = await ledger.settled((await ledger.transfer(source.id, target.id, 10)).id);
    expect(transfer).toEqual(expect.objectContaining({ status: 'failed', failureCode: 'ACCOUNT_CLOSED', refunded: false }));
    expect((await ledger.history(source.id)).map((event) => event.type)).toEqual(['accounts.AccountOpened', 'accounts.AccountClosed']);
    expect((await ledger.history(target.id)).map((event) => event.type)).toEqual(['accounts.AccountOpened']);
  });

  it('a closed target: the source is debited, then refunded: failed, ACCOUNT_CLOSED, refunded', async () => {
    const source = await ledger.openWith(500);
    const target = await ledger.openClosed();
    const accepted = await ledger.transfer(source.id, target.id, 200);
    const transfer = await ledger.settled(accepted.id);
    expect(transfer).toEqual(expect.objectContaining({ status: 'failed', failureCode: 'ACCOUNT_CLOSED', refunded: true, amount: 200 }));
    expect((await ledger.account(source.id)).balance).toBe(500);
    const movements = await ledger.transactions(source.id);
    expect(movements.map(({ type, amount, balanceAfter, transferId }) => ({ type, amount, balanceAfter, transferId }))).toEqual([
      { type: 'transfer-refund', amount: 200, balanceAfter: 500, transferId: accepted.id },
      { type: 'transfer-out', amount: 200, balanceAfter: 300, transferId: accepted.id },
      { type: 'deposit', amount: 500, balanceAfter: 500, transferId: null },
    ]);
    expect((await ledger.history(target.id)).map((event) => event.type)).toEqual(['accounts.AccountOpened', 'accounts.AccountClosed']);
    // refunded, never settled: the money came back and nothing is in flight, so the source may be emptied and closed
    expect(await ledger.legs(source.id, accepted.id)).toEqual(['accounts.TransferDebited', 'accounts.TransferRefunded']);
    await ledger.withdraw(source.id, 500);
    await ledger.close(source.id);
  });

  it('a target in another currency: refunded, ACCOUNT_CURRENCY_MISMATCH; the transfer is in the source currency', async () => {
    const source = await ledger.openWith(800, 'EUR');
    const target = await ledger.openWith(100, 'USD');
    const accepted = await ledger.transfer(source.id, target.id, 300);
    const transfer = await ledger.settled(accepted.id);
    expect(transfer).toEqual(
      expect.objectContaining({ status: 'failed', failureCode: 'ACCOUNT_CURRENCY_MISMATCH', refunded: true, currency: 'EUR' }),
    );
    expect((await ledger.account(source.id)).balance).toBe(800);
    expect((await ledger.account(target.id)).balance).toBe(100);
    expect((await ledger.transactions(source.id)).map((item) => item.type)).toEqual(['transfer-refund', 'transfer-out', 'deposit']);
    expect((await ledger.transactions(target.id)).map((item) => item.type)).toEqual(['deposit']);
    expect(await ledger.legs(source.id, accepted.id)).toEqual(['accounts.TransferDebited', 'accounts.TransferRefunded']);
  });

  it('a source emptied between the request and the process fails the transfer, or the transfer took the money first: never both', async () => {
    const source = await ledger.openWith(300);
    const target = await ledger.open();
    const accepted = await ledger.transfer(source.id, target.id, 300);
    const withdrawal = await t.http.post(`/accounts/${source.id}/withdrawals`).send({ amount: 300 });
    const transfer = await ledger.settled(accepted.id);
    if (withdrawal.status === 200) {
      expect(transfer).toEqual(expect.objectContaining({ status: 'failed', failureCode: 'ACCOUNT_INSUFFICIENT_FUNDS' }));
      expect((await ledger.account(target.id)).balance).toBe(0);
      expect(await ledger.legs(source.id, accepted.id)).toEqual([]);
    } else {
      expectProblem(withdrawal, 422, 'ACCOUNT_INSUFFICIENT_FUNDS');
      expect(transfer.status).toBe('completed');
      expect((await ledger.account(target.id)).balance).toBe(300);
      expect(await ledger.legs(source.id, accepted.id)).toEqual(['accounts.TransferDebited', 'accounts.TransferSettled']);
    }
    expect((await ledger.account(source.id)).balance).toBe(0);
  });
});

describe('GET /transfers/{id}', () => {
  it('404 TRANSFER_NOT_FOUND for a transfer that does not exist', async () => {
    const id = randomUUID();
    expect(expectProblem(await t.http.get(`/transfers/${id}`), 404, 'TRANSFER_NOT_FOUND').detail).toContain(id);
  });

  it('400 INVALID_ID for an id that is not a UUID', async () => {
    expectProblem(await t.http.get('/transfers/not-a-uuid'), 400, 'INVALID_ID');
  });

  it('400 INVALID_MIN_POSITION for a bad minPosition', async () => {
    expectProblem(await t.http.get(`/transfers/${randomUUID()}`).query({ minPosition: 'soon' }), 400, 'INVALID_MIN_POSITION');
  });
});

describe('GET /transfers/{id}/events: the whole chain', () => {
  it('every event of the transfer and of both legs, sharing the X-Correlation-Id of the POST, with causation and actor', async () => {
    const source = await ledger.openWith(1000);
    const target = await ledger.open();
    const correlationId = `transfer-test-${randomUUID()}`;
    const accepted = await ledger.transfer(source.id, target.id, 250, { headers: { 'X-Correlation-Id': correlationId } });
    expect(accepted.response.headers['x-correlation-id']).toBe(correlationId);
    await ledger.settled(accepted.id);

    const response = await t.http.get(`/transfers/${accepted.id}/events`);
    expect(response.status).toBe(200);
    const chain: Array<Record<string, any>> = response.body.items;
    expect(chain.map((event) => event.type)).toEqual([
      'transfers.TransferRequested',
      'accounts.TransferDebited',
      'transfers.SourceDebited',
      'accounts.TransferCredited',
      'accounts.TransferSettled',
      'transfers.TargetCredited',
      'transfers.TransferCompleted',
    ]);
    for (const event of chain) {
      expect(event.metadata).toEqual(
        expect.objectContaining({
          correlationId,
          eventId: expect.stringMatching(UUID),
          causationId: expect.any(String),
          occurredAt: expect.stringMatching(ISO_DATE),
        }),
      );
    }
    const positions = chain.map((event) => event.position);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    // The request is the HTTP caller's (its token's subject); every later step is the process
    // manager's, caused by an earlier event of the same chain.
    const [requested, ...steps] = chain;
    expect(requested.metadata.actor).toBe(TEST_SUBJECT);
    const eventIds = chain.map((event) => event.metadata.eventId);
    expect(eventIds).not.toContain(requested.metadata.causationId);
    for (const step of steps) {
      expect(step.metadata.actor).toBe('transfer-process');
      const cause = chain.findIndex((event) => event.metadata.eventId === step.metadata.causationId);
      expect(cause).toBeGreaterThanOrEqual(0);
      expect(chain[cause].position).toBeLessThan(step.position);
    }
    // the legs are the accounts' own events, as their streams hold them
    expect(chain[1]).toEqual(
      expect.objectContaining({ data: { accountId: source.id, transferId: accepted.id, amount: 250, balanceAfter: 750 } }),
    );
    expect(chain[3]).toEqual(
      expect.objectContaining({ data: { accountId: target.id, transferId: accepted.id, amount: 250, balanceAfter: 250 } }),
    );
    // the settlement is the source's, moves no money, and follows the credit
    expect(chain[4]).toEqual(expect.objectContaining({ data: { accountId: source.id, transferId: accepted.id, amount: 250 } }));
    const sourceEventIds = (await ledger.history(source.id)).map((event) => event.metadata.eventId);
    expect(sourceEventIds).toContain(chain[4].metadata.eventId);
  });

  it('the chain of a refunded transfer: debit, refused credit, refund, failure', async () => {
    const source = await ledger.openWith(1000);
    const target = await ledger.openClosed();
    const accepted = await ledger.transfer(source.id, target.id, 250);
    const correlationId = accepted.response.headers['x-correlation-id'];
    expect(correlationId).toMatch(/\S/); // generated when the caller sends none
    await ledger.settled(accepted.id);
    const chain = await ledger.chain(accepted.id);
    expect(chain.map((event) => event.type)).toEqual([
      'transfers.TransferRequested',
      'accounts.TransferDebited',
      'transfers.SourceDebited',
      'transfers.CreditRefused',
      'accounts.TransferRefunded',
      'transfers.SourceRefunded',
      'transfers.TransferFailed',
    ]);
    expect(new Set(chain.map((event) => event.metadata.correlationId))).toEqual(new Set([correlationId]));
    expect(chain[3].data).toEqual(expect.objectContaining({ code: 'ACCOUNT_CLOSED' }));
    expect(chain[6].data).toEqual(expect.objectContaining({ code: 'ACCOUNT_CLOSED', refunded: true }));
  });

  it('the chain of a transfer refused at the debit: request and failure only', async () => {
    const source = await ledger.openWith(10);
    const target = await ledger.open();
    const accepted = await ledger.transfer(source.id, target.id, 250);
    await ledger.settled(accepted.id);
    expect((await ledger.chain(accepted.id)).map((event) => event.type)).toEqual([
      'transfers.TransferRequested',
      'transfers.TransferFailed',
    ]);
  });

  it("holds only the transfer's own events when its correlation id is shared with other requests", async () => {
    const correlationId = `session-${randomUUID()}`;
    const headers = { 'X-Correlation-Id': correlationId };
    const source = await ledger.openWith(1000);
    const target = await ledger.open();
    const first = await ledger.transfer(source.id, target.id, 100, { headers });
    await ledger.settled(first.id);
    // the same caller, the same correlation: a deposit, then a second transfer between the same accounts
    const deposit = await t.http.post(`/accounts/${source.id}/deposits`).set('X-Correlation-Id', correlationId).send({ amount: 5 });
    expect(deposit.status).toBe(200);
    const second = await ledger.transfer(source.id, target.id, 200, { headers });
    await ledger.settled(second.id);
    const completedPath = [
      'transfers.TransferRequested',
      'accounts.TransferDebited',
      'transfers.SourceDebited',
      'accounts.TransferCredited',
      'accounts.TransferSettled',
      'transfers.TargetCredited',
      'transfers.TransferCompleted',
    ];
    for (const accepted of [first, second]) {
      const chain = await ledger.chain(accepted.id);
      expect(chain.map((event) => event.type)).toEqual(completedPath);
      for (const event of chain) {
        expect({ correlationId: event.metadata.correlationId, transferId: event.data.transferId }).toEqual({
          correlationId,
          transferId: accepted.id,
        });
      }
    }
    // every event of the correlation is in one of the two chains, except the deposit
    const [{ count }] = await t.dataSource.query(`SELECT count(*)::int AS count FROM events WHERE metadata->>'correlationId' = $1`, [
      correlationId,
    ]);
    expect(count).toBe(2 * completedPath.length + 1);
  });

  // Regression (GetTransferChainHandler, now src/transfers/transfer-history/get-transfer-events.handler.ts, which
  // used EventStore.readCorrelation with its default limit of 1000): the chain was every event of the
  // correlation from the OLDEST one, silently cut at 1000. A caller that reuses its X-Correlation-Id
  // (one per batch job or session) got, for a transfer asked for after 1000 events of that
  // correlation, a "chain" without a single event of the transfer — no error, no next page. The chain
  // is now the transfer's own events and its legs, from its TransferRequested on.
  it("holds the transfer's own events even when its correlation id was used for 1000 events before", async () => {
    const correlationId = `batch-${randomUUID()}`;
    const store = t.app.get(EventStore);
    const busy = randomUUID();
    const earlier: object[] = [new AccountOpened({ accountId: busy, ownerName: 'Batch', currency: 'EUR' })];
    for (let i = 1; i < 1000; i++) earlier.push(new MoneyDeposited({ accountId: busy, amount: 1, balanceAfter: i }));
    await store.append(`account-${busy}`, earlier, {
      expectedVersion: NO_STREAM,
      metadata: { correlationId, causationId: randomUUID(), actor: 'anonymous' },
    });
    const source = await ledger.openWith(1000);
    const target = await ledger.open();
    const accepted = await ledger.transfer(source.id, target.id, 10, { headers: { 'X-Correlation-Id': correlationId } });
    await ledger.settled(accepted.id);
    const chain = await ledger.chain(accepted.id);
    // exactly the transfer's events: none of the 1000 earlier ones of the correlation, none of the
    // opening and deposit of its accounts
    expect(chain.map((event) => event.type)).toEqual([
      'transfers.TransferRequested',
      'accounts.TransferDebited',
      'transfers.SourceDebited',
      'accounts.TransferCredited',
      'accounts.TransferSettled',
      'transfers.TargetCredited',
      'transfers.TransferCompleted',
    ]);
    expect(chain.every((event) => event.data.transferId === accepted.id && event.metadata.correlationId === correlationId)).toBe(true);
  });

  it('404 TRANSFER_NOT_FOUND for a transfer that does not exist, 400 INVALID_ID for a bad id', async () => {
    expectProblem(await t.http.get(`/transfers/${randomUUID()}/events`), 404, 'TRANSFER_NOT_FOUND');
    expectProblem(await t.http.get('/transfers/1234/events'), 400, 'INVALID_ID');
  });
});

describe('GET /accounts/{id}/transfers', () => {
  it('lists the transfers from and to the account, newest first, page by page (keyset)', async () => {
    const account = await ledger.openWith(10_000);
    const other = await ledger.openWith(10_000);
    const unrelated = await ledger.openWith(10_000);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const outgoing = i % 2 === 0;
      const accepted = outgoing ? await ledger.transfer(account.id, other.id, 10 + i) : await ledger.transfer(other.id, account.id, 10 + i);
      ids.push(accepted.id);
    }
    const notMine = await ledger.transfer(other.id, unrelated.id, 1);
    for (const id of [...ids, notMine.id]) await ledger.settled(id);

    const seen: Array<Record<string, any>> = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const response = await t.http.get(`/accounts/${account.id}/transfers`).query({ limit: 2, ...(cursor ? { cursor } : {}) });
      expect(response.status).toBe(200);
      expect(response.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...response.body.items);
      cursor = response.body.nextCursor ?? undefined;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen.map((item) => item.id)).toEqual([...ids].reverse());
    expect(seen.every((item) => item.status === 'completed')).toBe(true);
    expect(seen.map((item) => (item.fromAccountId === account.id ? 'out' : 'in'))).toEqual(['out', 'in', 'out', 'in', 'out']);
  });

  it('an account without transfers has an empty list', async () => {
    const account = await ledger.open();
    const response = await t.http.get(`/accounts/${account.id}/transfers`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ items: [], nextCursor: null });
  });

  it('refuses a foreign cursor (400 INVALID_CURSOR) and a limit out of range (400 VALIDATION_FAILED)', async () => {
    const account = await ledger.open();
    expectProblem(await t.http.get(`/accounts/${account.id}/transfers`).query({ cursor: 'bm9wZQ' }), 400, 'INVALID_CURSOR');
    const tooMany = expectProblem(await t.http.get(`/accounts/${account.id}/transfers`).query({ limit: 101 }), 400, 'VALIDATION_FAILED');
    expect(tooMany.errors.map((error: { field: string }) => error.field)).toEqual(['limit']);
    expectProblem(await t.http.get(`/accounts/${account.id}/transfers`).query({ limit: 0 }), 400, 'VALIDATION_FAILED');
  });
});
