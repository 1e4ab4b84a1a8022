import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type LedgerClient, type LedgerSchemas, createLedgerClient } from '../client/index.js';
import { testToken } from './support/auth.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// Transfers end to end through the typed client a consuming team would use (client/: openapi-fetch
// over the types openapi-typescript generates from the committed openapi.json), against the app built
// as main.ts builds it, listening on a real port, on a fresh database of a real PostgreSQL.
// Two things are checked: the behaviour (the same contract test/transfers.e2e-spec.ts covers with
// supertest, here its main flows), and that the generated types describe it: every request below is
// type-checked by `tsc` against openapi.json (a wrong path, a missing or mistyped parameter or body
// field fails the build, see `compileTimeContract`), and every answer is read through its generated type.

let t: TestApp;
let ledger: LedgerClient;
beforeAll(async () => {
  t = await startTestApp();
  await t.app.listen(0, '127.0.0.1');
  ledger = createLedgerClient(`http://127.0.0.1:${t.app.getHttpServer().address().port}`, testToken());
});
afterAll(() => t.close());

async function open(ownerName = 'Ada Lovelace', currency = 'EUR'): Promise<LedgerSchemas['CommandResult']> {
  const { data, error, response } = await ledger.POST('/accounts', { body: { ownerName, currency } });
  expect({ status: response.status, error }).toEqual({ status: 201, error: undefined });
  return data!;
}

async function openWith(balance: number, currency = 'EUR'): Promise<LedgerSchemas['CommandResult']> {
  const account = await open('Grace Hopper', currency);
  const { data, response } = await ledger.POST('/accounts/{id}/deposits', {
    params: { path: { id: account.id } },
    body: { amount: balance },
  });
  expect(response.status).toBe(200);
  return data!;
}

/** GET /transfers/{id} (reading its own write: minPosition) until it is completed or failed. */
async function settled(
  accepted: LedgerSchemas['TransferAcceptedResponse'],
  timeoutMs = 20_000,
): Promise<LedgerSchemas['TransferResponse']> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { data, error } = await ledger.GET('/transfers/{id}', {
      params: { path: { id: accepted.id }, query: { minPosition: accepted.position } },
    });
    if (error) throw new Error(`GET /transfers/${accepted.id}: ${error.status} ${error.code}`);
    if (data.status !== 'pending') return data;
    if (Date.now() > deadline) throw new Error(`transfer ${accepted.id} still pending after ${timeoutMs} ms`);
    await sleep(20);
  }
}

async function balanceAfter(id: string, position: number): Promise<number> {
  const { data, error } = await ledger.GET('/accounts/{id}', { params: { path: { id }, query: { minPosition: position } } });
  expect(error).toBeUndefined();
  return data!.balance;
}

describe('transfers through the typed client', () => {
  it('a transfer is accepted (202, Location), completes, and moves the amount exactly once', async () => {
    const source = await openWith(1000);
    const target = await open();
    const {
      data: accepted,
      error,
      response,
    } = await ledger.POST('/transfers', {
      body: { fromAccountId: source.id, toAccountId: target.id, amount: 300, reference: 'Rent' },
    });
    expect({ status: response.status, error }).toEqual({ status: 202, error: undefined });
    expect(accepted).toEqual({ id: expect.any(String), status: 'pending', position: expect.any(Number) });
    expect(response.headers.get('location')).toBe(`/transfers/${accepted!.id}`);

    const transfer = await settled(accepted!);
    expect(transfer).toMatchObject({
      id: accepted!.id,
      fromAccountId: source.id,
      toAccountId: target.id,
      amount: 300,
      currency: 'EUR',
      reference: 'Rent',
      status: 'completed',
      refunded: false,
    });

    // The chain of the transfer, oldest first: its legs on both accounts, each once.
    const { data: chain } = await ledger.GET('/transfers/{id}/events', { params: { path: { id: accepted!.id }, query: { limit: 1000 } } });
    const last = chain!.items[chain!.items.length - 1];
    expect(chain!.nextCursor).toBeNull();
    expect(await balanceAfter(source.id, last.position)).toBe(700);
    expect(await balanceAfter(target.id, last.position)).toBe(300);

    // and both accounts list it
    for (const account of [source, target]) {
      const { data: transfers } = await ledger.GET('/accounts/{id}/transfers', {
        params: { path: { id: account.id }, query: { minPosition: last.position } },
      });
      expect(transfers!.items.map((item) => item.id)).toEqual([accepted!.id]);
    }
  });

  it('a transfer the source cannot cover fails with ACCOUNT_INSUFFICIENT_FUNDS and moves nothing', async () => {
    const source = await openWith(100);
    const target = await open();
    const { data: accepted } = await ledger.POST('/transfers', { body: { fromAccountId: source.id, toAccountId: target.id, amount: 101 } });
    const transfer = await settled(accepted!);
    expect(transfer).toMatchObject({ status: 'failed', failureCode: 'ACCOUNT_INSUFFICIENT_FUNDS', refunded: false });
    const { data: chain } = await ledger.GET('/transfers/{id}/events', { params: { path: { id: accepted!.id } } });
    const last = chain!.items[chain!.items.length - 1].position;
    expect(await balanceAfter(source.id, last)).toBe(100);
    expect(await balanceAfter(target.id, last)).toBe(0);
  });

  it('a refused transfer answers its problem document as the typed `error`', async () => {
    const account = await openWith(100);
    const { data, error, response } = await ledger.POST('/transfers', {
      body: { fromAccountId: account.id, toAccountId: account.id, amount: 1 },
    });
    expect(data).toBeUndefined();
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(error).toMatchObject({ status: 400, code: 'VALIDATION_FAILED', errors: [expect.objectContaining({ field: 'toAccountId' })] });

    const unknown = await ledger.GET('/transfers/{id}', { params: { path: { id: randomUUID() } } });
    expect({ status: unknown.response.status, code: unknown.error?.code }).toEqual({ status: 404, code: 'TRANSFER_NOT_FOUND' });
  });

  it('the same Idempotency-Key replays the accepted transfer instead of requesting a second one', async () => {
    const source = await openWith(1000);
    const target = await open();
    const request = {
      params: { header: { 'Idempotency-Key': `client-${randomUUID()}` } },
      body: { fromAccountId: source.id, toAccountId: target.id, amount: 250 },
    };
    const first = await ledger.POST('/transfers', request);
    const retry = await ledger.POST('/transfers', request);
    expect(retry.response.status).toBe(202);
    expect(retry.response.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.data).toEqual(first.data);
    const transfer = await settled(first.data!);
    expect(transfer.status).toBe('completed');
    const { data: chain } = await ledger.GET('/transfers/{id}/events', { params: { path: { id: transfer.id } } });
    expect(await balanceAfter(source.id, chain!.items[chain!.items.length - 1].position)).toBe(750);
  });

  it('If-Match with a stale ETag is refused with 412 and the current ETag', async () => {
    const account = await openWith(500); // version 2
    const { error, response } = await ledger.POST('/accounts/{id}/withdrawals', {
      params: { path: { id: account.id }, header: { 'If-Match': '"1"' } },
      body: { amount: 10 },
    });
    expect({ status: response.status, code: error?.code, etag: response.headers.get('etag') }).toEqual({
      status: 412,
      code: 'VERSION_MISMATCH',
      etag: '"2"',
    });
    const current = await ledger.POST('/accounts/{id}/withdrawals', {
      params: { path: { id: account.id }, header: { 'If-Match': response.headers.get('etag')! } },
      body: { amount: 10 },
    });
    expect({ status: current.response.status, version: current.data?.version }).toEqual({ status: 200, version: 3 });
  });

  it('what the generated types reject (the check is tsc: see compileTimeContract)', () => {
    expect(typeof compileTimeContract).toBe('function');
  });
});

/**
 * Never called: `tsc` (npm test's first step) checks each line below is an error, so the generated
 * types really constrain the requests (an unused @ts-expect-error is itself an error).
 */
function compileTimeContract(client: LedgerClient): void {
  // @ts-expect-error a path the API does not have
  void client.GET('/transfer/{id}', { params: { path: { id: 'x' } } });
  // @ts-expect-error POST /transfers/{id} does not exist (transfers are requested at /transfers)
  void client.POST('/transfers/{id}', { params: { path: { id: 'x' } }, body: {} });
  // @ts-expect-error amount is an integer of minor units, not a string
  void client.POST('/transfers', { body: { fromAccountId: 'a', toAccountId: 'b', amount: '10' } });
  // @ts-expect-error toAccountId is required
  void client.POST('/transfers', { body: { fromAccountId: 'a', amount: 10 } });
  // @ts-expect-error the path parameter is required
  void client.GET('/transfers/{id}', {});
  // @ts-expect-error minPosition is a number
  void client.GET('/transfers/{id}', { params: { path: { id: 'x' }, query: { minPosition: 'soon' } } });
  // @ts-expect-error a query parameter this operation does not take
  void client.GET('/transfers/{id}', { params: { path: { id: 'x' }, query: { since: 1 } } });
}
