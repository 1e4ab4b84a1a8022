import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from '@jest/globals';
import type { Response } from 'supertest';
import type { TestApp } from './test-app.js';

/**
 * The accounts and transfers API over HTTP (supertest on the app built as main.ts builds it), with
 * the expectations every caller would otherwise repeat. Transfers are asynchronous: `settled` polls
 * GET /transfers/{id} until the process has completed or failed it.
 */
export class LedgerClient {
  constructor(private readonly t: TestApp) {}

  get http(): TestApp['http'] {
    return this.t.http;
  }

  async open(ownerName = 'Ada Lovelace', currency = 'EUR'): Promise<{ id: string; position: number }> {
    const response = await this.t.http.post('/accounts').send({ ownerName, currency });
    expect(response.status).toBe(201);
    return { id: response.body.id, position: response.body.position };
  }

  async deposit(id: string, amount: number): Promise<Response> {
    const response = await this.t.http.post(`/accounts/${id}/deposits`).send({ amount });
    expect({ status: response.status, body: response.body }).toEqual({ status: 200, body: expect.objectContaining({ id }) });
    return response;
  }

  async withdraw(id: string, amount: number): Promise<Response> {
    const response = await this.t.http.post(`/accounts/${id}/withdrawals`).send({ amount });
    expect({ status: response.status, body: response.body }).toEqual({ status: 200, body: expect.objectContaining({ id }) });
    return response;
  }

  async close(id: string): Promise<Response> {
    const response = await this.t.http.post(`/accounts/${id}/close`);
    expect({ status: response.status, body: response.body }).toEqual({ status: 200, body: expect.objectContaining({ id }) });
    return response;
  }

  /** Opens an account holding `balance`. */
  async openWith(balance: number, currency = 'EUR', ownerName = 'Ada Lovelace'): Promise<{ id: string; position: number }> {
    const account = await this.open(ownerName, currency);
    if (balance === 0) return account;
    const response = await this.deposit(account.id, balance);
    return { id: account.id, position: response.body.position };
  }

  /** Opens an account and closes it at once (at zero). */
  async openClosed(currency = 'EUR'): Promise<{ id: string; position: number }> {
    const account = await this.open('Closed Owner', currency);
    const response = await this.close(account.id);
    return { id: account.id, position: response.body.position };
  }

  /** POST /transfers, expecting 202; returns the accepted body. */
  async transfer(
    fromAccountId: string,
    toAccountId: string,
    amount: number,
    extra: { reference?: string; headers?: Record<string, string> } = {},
  ): Promise<{ id: string; status: string; position: number; response: Response }> {
    const body = { fromAccountId, toAccountId, amount, ...(extra.reference === undefined ? {} : { reference: extra.reference }) };
    const request = this.t.http.post('/transfers').send(body);
    for (const [name, value] of Object.entries(extra.headers ?? {})) request.set(name, value);
    const response = await request;
    expect({ status: response.status, body: response.body }).toEqual({ status: 202, body: expect.objectContaining({ status: 'pending' }) });
    return { ...response.body, response };
  }

  /** GET /transfers/{id} until it is completed or failed; the last answer's body. */
  async settled(id: string, timeoutMs = 20_000): Promise<Record<string, any>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const response = await this.t.http.get(`/transfers/${id}`);
      expect([200, 404]).toContain(response.status); // 404 only until the projection has seen the request
      if (response.status === 200 && response.body.status !== 'pending') return response.body;
      if (Date.now() > deadline) throw new Error(`transfer ${id} still ${response.body.status ?? response.status} after ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /** GET /transfers/{id}/events: the transfer's whole chain, every page. */
  async chain(id: string): Promise<Array<Record<string, any>>> {
    return this.everyPage(`/transfers/${id}/events`);
  }

  /** GET /accounts/{id}/events: the account's stream, always current, every page. */
  async history(id: string): Promise<Array<Record<string, any>>> {
    return this.everyPage(`/accounts/${id}/events`);
  }

  /** The items of every page of a per-stream event list, walked with nextCursor. */
  private async everyPage(path: string): Promise<Array<Record<string, any>>> {
    const items: Array<Record<string, any>> = [];
    let cursor: string | undefined;
    do {
      const response = await this.t.http.get(path).query({ limit: 1000, ...(cursor ? { cursor } : {}) });
      expect({ path, status: response.status }).toEqual({ path, status: 200 });
      items.push(...response.body.items);
      cursor = response.body.nextCursor ?? undefined;
    } while (cursor);
    return items;
  }

  /**
   * The types of the account's events that belong to one transfer (its legs: debit, then settlement or
   * refund, on the source; credit on the target), in stream order.
   */
  async legs(accountId: string, transferId: string): Promise<string[]> {
    return (await this.history(accountId)).filter((event) => event.data.transferId === transferId).map((event) => event.type);
  }

  /** GET /accounts/{id} once the read model reflects the account's last stored event. */
  async account(id: string): Promise<Record<string, any>> {
    const history = await this.history(id);
    const response = await this.t.http.get(`/accounts/${id}`).query({ minPosition: history[history.length - 1].position });
    expect(response.status).toBe(200);
    return response.body;
  }

  /** Every item of GET /accounts/{id}/transactions (newest first), once it reflects the last stored event. */
  async transactions(id: string): Promise<Array<Record<string, any>>> {
    const history = await this.history(id);
    const items: Array<Record<string, any>> = [];
    let cursor: string | undefined;
    do {
      const response = await this.t.http
        .get(`/accounts/${id}/transactions`)
        .query({ minPosition: history[history.length - 1].position, limit: 100, ...(cursor ? { cursor } : {}) });
      expect(response.status).toBe(200);
      items.push(...response.body.items);
      cursor = response.body.nextCursor ?? undefined;
    } while (cursor);
    return items;
  }

  async totalEvents(): Promise<number> {
    const [row] = await this.t.dataSource.query('SELECT count(*)::int AS count FROM events');
    return row.count;
  }
}

/** RFC 9457 problem+json with this status and stable code. */
export function expectProblem(response: Response, status: number, code: string): Record<string, any> {
  expect({ status: response.status, code: response.body?.code }).toEqual({ status, code });
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json(;|$)/);
  expect(response.body).toEqual(
    expect.objectContaining({
      type: expect.stringMatching(/\S/),
      title: expect.stringMatching(/\S/),
      status,
      detail: expect.stringMatching(/\S/),
      code,
    }),
  );
  return response.body;
}
