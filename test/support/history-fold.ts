import type { TestApp } from './test-app.js';

/**
 * Independent folds of the events the API shows (GET /accounts/{id}/events, GET /events), written
 * from the documented contract and sharing no code with the application: what GET
 * /accounts/{id}/state and GET /transfers/{id}/state must answer for a cut of those events.
 */

/** An event as every event list (GET /accounts/{id}/events, GET /transfers/{id}/events, GET /events) shows it. */
export interface ApiEvent {
  readonly streamId: string;
  readonly type: string;
  readonly version: number;
  readonly position: number;
  readonly schemaVersion: number;
  readonly data: Record<string, any>;
  readonly metadata: Record<string, any>;
  readonly recordedAt: string;
}

export interface AccountStateView {
  id: string;
  ownerName: string;
  currency: string;
  balance: number;
  status: 'open' | 'closed';
  version: number;
  asOf: string;
}

export interface TransferStateView {
  id: string;
  fromAccountId: string;
  toAccountId: string;
  amount: number;
  currency: string;
  reference: string | null;
  status: 'pending' | 'debited' | 'refunding' | 'completed' | 'failed';
  failureCode: string | null;
  version: number;
  asOf: string;
}

const CREDITS = new Set(['accounts.MoneyDeposited', 'accounts.TransferCredited', 'accounts.TransferRefunded']);
const DEBITS = new Set(['accounts.MoneyWithdrawn', 'accounts.TransferDebited']);

/** The account after these events (a prefix of its stream, in version order); throws on a malformed history. */
export function foldAccount(events: readonly ApiEvent[]): AccountStateView {
  let state: AccountStateView | undefined;
  events.forEach((event, index) => {
    if (event.version !== index + 1) throw new Error(`account history: version ${event.version} at index ${index}`);
    if (event.type === 'accounts.AccountOpened') {
      if (state) throw new Error('account opened twice');
      state = {
        id: event.data.accountId,
        ownerName: event.data.ownerName,
        currency: event.data.currency,
        balance: 0,
        status: 'open',
        version: event.version,
        asOf: event.recordedAt,
      };
      return;
    }
    if (!state) throw new Error(`${event.type} before the account was opened`);
    if (CREDITS.has(event.type)) state.balance += event.data.amount;
    else if (DEBITS.has(event.type)) state.balance -= event.data.amount;
    else if (event.type === 'accounts.AccountClosed') state.status = 'closed';
    else if (event.type === 'accounts.TransferSettled') {
      // the source learns its transfer arrived: no balance change
    } else throw new Error(`unexpected account event ${event.type}`);
    if ('balanceAfter' in event.data && event.data.balanceAfter !== state.balance) {
      throw new Error(`stored balanceAfter ${event.data.balanceAfter} at version ${event.version}, recomputed ${state.balance}`);
    }
    state.version = event.version;
    state.asOf = event.recordedAt;
  });
  if (!state) throw new Error('no events to fold');
  return state;
}

/** The transfer after these events of its own stream (a prefix, in version order). */
export function foldTransfer(events: readonly ApiEvent[]): TransferStateView {
  let state: TransferStateView | undefined;
  events.forEach((event, index) => {
    if (event.version !== index + 1) throw new Error(`transfer history: version ${event.version} at index ${index}`);
    if (event.type === 'transfers.TransferRequested') {
      if (state) throw new Error('transfer requested twice');
      state = {
        id: event.data.transferId,
        fromAccountId: event.data.fromAccountId,
        toAccountId: event.data.toAccountId,
        amount: event.data.amount,
        currency: event.data.currency,
        reference: event.data.reference ?? null,
        status: 'pending',
        failureCode: null,
        version: event.version,
        asOf: event.recordedAt,
      };
      return;
    }
    if (!state) throw new Error(`${event.type} before the transfer was requested`);
    switch (event.type) {
      case 'transfers.SourceDebited':
        state.status = 'debited';
        break;
      case 'transfers.TargetCredited':
      case 'transfers.SourceRefunded':
        break; // the next event of the same append says where the transfer stands
      case 'transfers.TransferCompleted':
        state.status = 'completed';
        break;
      case 'transfers.CreditRefused':
        state.status = 'refunding';
        state.failureCode = event.data.code;
        break;
      case 'transfers.TransferFailed':
        state.status = 'failed';
        state.failureCode = event.data.code;
        break;
      default:
        throw new Error(`unexpected transfer event ${event.type}`);
    }
    state.version = event.version;
    state.asOf = event.recordedAt;
  });
  if (!state) throw new Error('no events to fold');
  return state;
}

/** The events a reader of the stream "as of" `instant` sees: every event recorded at or before it. */
export function recordedBy(events: readonly ApiEvent[], instant: number): ApiEvent[] {
  return events.filter((event) => Date.parse(event.recordedAt) <= instant);
}

/** GET /accounts/{id}/events, every page (always current: it reads the event store). */
export async function accountEvents(t: TestApp, accountId: string): Promise<ApiEvent[]> {
  const items: ApiEvent[] = [];
  let cursor: string | undefined;
  do {
    const response = await t.http.get(`/accounts/${accountId}/events`).query({ limit: 1000, ...(cursor ? { cursor } : {}) });
    if (response.status !== 200) throw new Error(`GET /accounts/${accountId}/events answered ${response.status}`);
    items.push(...response.body.items);
    cursor = response.body.nextCursor ?? undefined;
  } while (cursor);
  return items;
}

/** Every page of GET /events with these parameters, walked with `next` from `after`. */
export async function walkFeed(
  t: TestApp,
  query: { after?: number; limit?: number; type?: string; stream?: string } = {},
): Promise<{ items: ApiEvent[]; pages: Array<{ after: number; items: ApiEvent[]; next: number }> }> {
  const items: ApiEvent[] = [];
  const pages: Array<{ after: number; items: ApiEvent[]; next: number }> = [];
  let after = query.after ?? 0;
  for (let page = 0; page < 100_000; page++) {
    const response = await t.http.get('/events').query({ ...query, after });
    if (response.status !== 200)
      throw new Error(`GET /events?after=${after} answered ${response.status}: ${JSON.stringify(response.body)}`);
    pages.push({ after, items: response.body.items, next: response.body.next });
    items.push(...response.body.items);
    if (response.body.items.length === 0) return { items, pages };
    after = response.body.next;
  }
  throw new Error('GET /events never ran dry');
}

/** The events of one stream as GET /events?stream= shows them (with streamId), oldest first. */
export async function streamEvents(t: TestApp, streamId: string): Promise<ApiEvent[]> {
  return (await walkFeed(t, { stream: streamId, limit: 1000 })).items.sort((a, b) => a.version - b.version);
}
