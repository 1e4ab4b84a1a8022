import { expect } from '@jest/globals';
import type { Response } from 'supertest';
import { expectProblemAnswer } from './problem.js';
import { type Via, projectionPosition, reflecting } from './read-your-writes.js';
import type { TestApp } from './test-app.js';

// Shared by the accounts-*.e2e-spec.ts files (the HTTP contract of the accounts API, split by
// concern). Each file starts its own app on a fresh database; tests of a file share it, so each one
// works on accounts it opens itself (list tests use an owner name of their own).
//
// GET /accounts, GET /accounts/{id} and GET /accounts/{id}/transactions are served by projections
// updated asynchronously after each commit: a GET that must reflect a write passes the `position`
// the command answered as minPosition (query parameter or X-Min-Position header, both used here).
// GET /accounts/{id}/events reads the event store itself and is always current.

export const MAX_SAFE = Number.MAX_SAFE_INTEGER;
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export interface Opened {
  readonly id: string;
  readonly version: number;
  /** Log position of the account's last event (what a GET passes as minPosition to reflect it). */
  readonly position: number;
}

/** Helpers bound to the file's app (`app()` is called at use, after beforeAll has started it). */
export function accountsApi(app: () => TestApp) {
  async function open(ownerName = 'Ada Lovelace', currency = 'EUR'): Promise<Opened> {
    const response = await app().http.post('/accounts').send({ ownerName, currency });
    expect(response.status).toBe(201);
    return { id: response.body.id, version: response.body.version, position: response.body.position };
  }

  async function deposit(id: string, amount: number): Promise<Response> {
    const response = await app().http.post(`/accounts/${id}/deposits`).send({ amount });
    expect(response.status).toBe(200);
    return response;
  }

  async function withdraw(id: string, amount: number): Promise<Response> {
    const response = await app().http.post(`/accounts/${id}/withdrawals`).send({ amount });
    expect(response.status).toBe(200);
    return response;
  }

  async function close(id: string): Promise<Response> {
    const response = await app().http.post(`/accounts/${id}/close`);
    expect(response.status).toBe(200);
    return response;
  }

  async function openWith(balance: number, ownerName?: string): Promise<Opened> {
    const account = await open(ownerName);
    if (balance === 0) return account;
    const response = await deposit(account.id, balance);
    return { id: account.id, version: response.body.version, position: response.body.position };
  }

  async function openClosed(): Promise<Opened> {
    const account = await open();
    const response = await close(account.id);
    return { id: account.id, version: response.body.version, position: response.body.position };
  }

  /** GET /accounts/{id} once the account-summary projection has applied the write at `position`. */
  async function getAccount(id: string, position: number, via: Via = 'query'): Promise<Response> {
    const response = await reflecting(app().http.get(`/accounts/${id}`), position, via);
    expect(response.status).toBe(200);
    expect(projectionPosition(response)).toBeGreaterThanOrEqual(position);
    return response;
  }

  /** Every page of GET /accounts/{id}/events. */
  async function historyOf(id: string): Promise<Array<Record<string, any>>> {
    const items: Array<Record<string, any>> = [];
    let cursor: string | undefined;
    do {
      const response = await app()
        .http.get(`/accounts/${id}/events`)
        .query({ limit: 1000, ...(cursor ? { cursor } : {}) });
      expect(response.status).toBe(200);
      items.push(...response.body.items);
      cursor = response.body.nextCursor ?? undefined;
    } while (cursor);
    return items;
  }

  async function totalEvents(): Promise<number> {
    const [row] = await app().dataSource.query('SELECT count(*)::int AS count FROM events');
    return row.count;
  }

  /**
   * What a refused request must leave untouched: the account's history (from the store, always
   * current), its balance, version and status (from the read model, read once it has applied the
   * account's last stored event, so that the comparison is meaningful), and the whole log.
   */
  async function stateOf(id?: string): Promise<unknown> {
    const total = await totalEvents();
    if (id === undefined) return { total };
    const history = await historyOf(id);
    const account = (await getAccount(id, history[history.length - 1].position, 'header')).body;
    return { total, history, balance: account.balance, version: account.version, status: account.status };
  }

  return { open, deposit, withdraw, close, openWith, openClosed, getAccount, historyOf, totalEvents, stateOf };
}

/**
 * Every error is RFC 9457 problem+json with a stable code (support/problem.ts), and carries no ETag
 * (the only exception being 412, whose ETag is the current version, never an Express content hash).
 */
export function expectProblem(response: Response, status: number, code: string): Record<string, any> {
  const body = expectProblemAnswer(response, status, code);
  if (status === 412) expect(response.headers.etag).toMatch(/^"[1-9][0-9]*"$/);
  else expect(response.headers.etag).toBeUndefined();
  return body;
}

export function invalidFields(response: Response): string[] {
  expectProblem(response, 400, 'VALIDATION_FAILED');
  const errors = response.body.errors as Array<{ field: string; messages: string[] }>;
  expect(Array.isArray(errors)).toBe(true);
  for (const error of errors) expect(error.messages.length).toBeGreaterThan(0);
  return errors.map((error) => error.field).sort();
}
