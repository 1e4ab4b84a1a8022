import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { MoneyDeposited, MoneyWithdrawn } from '../src/accounts/account.events.js';
import { accountStreamId } from '../src/accounts/account.js';
import { EventStore } from '../src/event-sourcing/index.js';
import { accountEvents, foldAccount, walkFeed } from './support/history-fold.js';
import { insertLegacyEvents } from './support/legacy-events.js';
import { expectProblemAnswer } from './support/problem.js';
import { eventually, rows, waitUntilCaughtUp } from './support/projection-fixtures.js';
import { connectSse, portOf } from './support/sse-client.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// Schema evolution: accounts.MoneyDeposited and accounts.MoneyWithdrawn are at schema version 2
// (they gained `reference`). Version-1 events, inserted with SQL exactly as the service stored them
// before the change, must be seen by every reader as version 2 with `reference: null` — and are
// never rewritten in the table.

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
  await t.app.listen(0, '127.0.0.1');
});
afterAll(() => t?.close());

async function post(path: string, body?: object): Promise<Record<string, any>> {
  const response = await t.http.post(path).send(body);
  if (response.status >= 300) throw new Error(`POST ${path} answered ${response.status}: ${JSON.stringify(response.body)}`);
  return response.body;
}

interface StoredRow {
  position: number;
  version: number;
  type: string;
  schema_version: number;
  data: Record<string, unknown>;
}

async function storedRows(streamId: string): Promise<StoredRow[]> {
  const found = await rows<StoredRow & { position: string }>(
    t.dataSource,
    'SELECT position, version, type, schema_version, data FROM events WHERE stream_id = $1 ORDER BY version',
    [streamId],
  );
  return found.map((row) => ({ ...row, position: Number(row.position) }));
}

/** What any reader must show for a stored row: version-1 deposits and withdrawals upcast with reference null. */
function asCurrent(row: StoredRow): { schemaVersion: number; data: Record<string, unknown> } {
  const upcast = ['accounts.MoneyDeposited', 'accounts.MoneyWithdrawn'].includes(row.type);
  if (upcast && row.schema_version === 1) return { schemaVersion: 2, data: { ...row.data, reference: null } };
  return { schemaVersion: upcast ? 2 : 1, data: row.data };
}

const MOVEMENT_TYPE: Record<string, string> = { 'accounts.MoneyDeposited': 'deposit', 'accounts.MoneyWithdrawn': 'withdrawal' };

describe('version-1 MoneyDeposited / MoneyWithdrawn events', () => {
  let lin: string; // opened through HTTP, then legacy movements
  let old: string; // entirely legacy, down to zero
  let legacyPositions: number[];
  let lastPosition: number;

  beforeAll(async () => {
    lin = (await post('/accounts', { ownerName: 'Legacy Lin', currency: 'EUR' })).id;
    const linLegacy = await insertLegacyEvents(t.dataSource, accountStreamId(lin), [
      { type: 'accounts.MoneyDeposited', schemaVersion: 1, data: { accountId: lin, amount: 1000, balanceAfter: 1000 } },
      { type: 'accounts.MoneyWithdrawn', schemaVersion: 1, data: { accountId: lin, amount: 200, balanceAfter: 800 } },
      { type: 'accounts.MoneyDeposited', schemaVersion: 1, data: { accountId: lin, amount: 50, balanceAfter: 850 } },
    ]);
    old = randomUUID();
    const oldLegacy = await insertLegacyEvents(t.dataSource, accountStreamId(old), [
      { type: 'accounts.AccountOpened', schemaVersion: 1, data: { accountId: old, ownerName: 'Old Olga', currency: 'USD' } },
      { type: 'accounts.MoneyDeposited', schemaVersion: 1, data: { accountId: old, amount: 500, balanceAfter: 500 } },
      { type: 'accounts.MoneyWithdrawn', schemaVersion: 1, data: { accountId: old, amount: 500, balanceAfter: 0 } },
    ]);
    legacyPositions = [...linLegacy, ...oldLegacy.slice(1)];
  });

  it('are stored as they were: schema version 1, no `reference` key', async () => {
    const stored = [...(await storedRows(accountStreamId(lin))), ...(await storedRows(accountStreamId(old)))].filter((row) =>
      legacyPositions.includes(row.position),
    );
    expect(stored).toHaveLength(5);
    for (const row of stored) {
      expect({ position: row.position, schemaVersion: row.schema_version, hasReference: 'reference' in row.data }).toEqual({
        position: row.position,
        schemaVersion: 1,
        hasReference: false,
      });
    }
  });

  it('the event store hands them out as the current classes, version 2, reference null', async () => {
    const events = await t.app.get(EventStore).readStream(accountStreamId(lin));
    const legacy = events.filter((event) => legacyPositions.includes(event.position));
    expect(legacy).toHaveLength(3);
    for (const event of legacy) {
      expect(event.data instanceof MoneyDeposited || event.data instanceof MoneyWithdrawn).toBe(true);
      expect({ schemaVersion: event.schemaVersion, reference: (event.data as MoneyDeposited).reference }).toEqual({
        schemaVersion: 2,
        reference: null,
      });
    }
  });

  it('the aggregate decides on them: a withdrawal of one more is refused with their balance, of exactly it succeeds; an all-legacy account at zero closes', async () => {
    expect(
      expectProblemAnswer(await t.http.post(`/accounts/${lin}/withdrawals`).send({ amount: 851 }), 422, 'ACCOUNT_INSUFFICIENT_FUNDS')
        .balance,
    ).toBe(850);
    const withdrawn = await post(`/accounts/${lin}/withdrawals`, { amount: 850, reference: 'Rent' });
    expect(withdrawn.version).toBe(5);
    const deposited = await post(`/accounts/${lin}/deposits`, { amount: 75, reference: 'Salary' });
    expect(deposited.version).toBe(6);
    const closeRefused = await t.http.post(`/accounts/${old}/withdrawals`).send({ amount: 1 });
    expect(expectProblemAnswer(closeRefused, 422, 'ACCOUNT_INSUFFICIENT_FUNDS').balance).toBe(0);
    const closed = await post(`/accounts/${old}/close`);
    lastPosition = closed.position;
    expect(closed.version).toBe(4);

    // What was appended on top is stored at schema version 2, with its reference.
    const stored = await storedRows(accountStreamId(lin));
    expect(stored.slice(4).map((row) => ({ type: row.type, schemaVersion: row.schema_version, data: row.data }))).toEqual([
      { type: 'accounts.MoneyWithdrawn', schemaVersion: 2, data: { accountId: lin, amount: 850, balanceAfter: 0, reference: 'Rent' } },
      { type: 'accounts.MoneyDeposited', schemaVersion: 2, data: { accountId: lin, amount: 75, balanceAfter: 75, reference: 'Salary' } },
    ]);
  });

  it('GET /accounts/{id}/events and GET /events show them as version 2 with reference null', async () => {
    for (const id of [lin, old]) {
      const stored = await storedRows(accountStreamId(id));
      const history = await accountEvents(t, id);
      expect(
        history.map((event) => ({
          position: event.position,
          type: event.type,
          ...{ schemaVersion: event.schemaVersion, data: event.data },
        })),
      ).toEqual(stored.map((row) => ({ position: row.position, type: row.type, ...asCurrent(row) })));
      // GET /events is commit-safe: a transaction in flight anywhere on the server may hold the newest back a moment.
      const feed = await eventually('GET /events to show the whole stream', async () => {
        const walk = await walkFeed(t, { stream: accountStreamId(id), limit: 2 });
        return walk.items.length >= stored.length ? walk : undefined;
      });
      expect(
        feed.items.map((event) => ({ position: event.position, type: event.type, schemaVersion: event.schemaVersion, data: event.data })),
      ).toEqual(stored.map((row) => ({ position: row.position, type: row.type, ...asCurrent(row) })));
    }
    const deposits = await walkFeed(t, { type: 'accounts.MoneyDeposited,accounts.MoneyWithdrawn', limit: 1000 }); // all visible: seen above
    const legacy = deposits.items.filter((event) => legacyPositions.includes(event.position));
    expect(legacy).toHaveLength(5);
    expect(legacy.every((event) => event.schemaVersion === 2 && event.data.reference === null)).toBe(true);
    expect(deposits.items.find((event) => event.data.reference === 'Salary')).toEqual(
      expect.objectContaining({ schemaVersion: 2, type: 'accounts.MoneyDeposited' }),
    );
  });

  it('the live feed (SSE) shows them as version 2 with reference null, exactly as GET /events', async () => {
    const stream = await connectSse(portOf(t.app), { lastEventId: '0' });
    try {
      await stream.waitForId(lastPosition);
      const messages = stream.feedMessages();
      const feed = await walkFeed(t, { limit: 1000 });
      expect(messages.map((message) => message.data)).toEqual(feed.items.slice(0, messages.length));
      const legacy = messages.filter((message) => legacyPositions.includes(message.id));
      expect(legacy.map((message) => ({ schemaVersion: message.data.schemaVersion, reference: message.data.data.reference }))).toEqual(
        legacyPositions.map(() => ({ schemaVersion: 2, reference: null })),
      );
    } finally {
      stream.close();
    }
  });

  it('time travel folds them: every version equals a replay of the upcast history', async () => {
    for (const id of [lin, old]) {
      const history = await accountEvents(t, id);
      for (let version = 1; version <= history.length; version++) {
        const response = await t.http.get(`/accounts/${id}/state`).query({ atVersion: version });
        expect({ id, version, status: response.status, body: response.body }).toEqual({
          id,
          version,
          status: 200,
          body: foldAccount(history.slice(0, version)),
        });
      }
    }
    expect((await t.http.get(`/accounts/${lin}/state`).query({ atVersion: 4 })).body.balance).toBe(850);
    expect((await t.http.get(`/accounts/${old}/state`).query({ atVersion: 4 })).body).toEqual(
      expect.objectContaining({ balance: 0, status: 'closed', currency: 'USD' }),
    );
  });

  it('both account projections show them (reference null; new movements with theirs), and a rebuild gives the same tables', async () => {
    await waitUntilCaughtUp(t.dataSource, ['account-summary', 'account-transactions']);

    // Over HTTP: the read models reflect the legacy history.
    const summary = await t.http.get(`/accounts/${lin}`).query({ minPosition: lastPosition });
    expect({ status: summary.status, balance: summary.body.balance, version: summary.body.version }).toEqual({
      status: 200,
      balance: 75,
      version: 6,
    });
    const olga = await t.http.get(`/accounts/${old}`).query({ minPosition: lastPosition });
    expect({ status: olga.status, balance: olga.body.balance, state: olga.body.status, owner: olga.body.ownerName }).toEqual({
      status: 200,
      balance: 0,
      state: 'closed',
      owner: 'Old Olga',
    });
    const movements = await t.http.get(`/accounts/${lin}/transactions`).query({ minPosition: lastPosition, limit: 100 });
    expect(
      movements.body.items.map((item: Record<string, any>) => ({
        type: item.type,
        amount: item.amount,
        balanceAfter: item.balanceAfter,
        reference: item.reference,
      })),
    ).toEqual([
      { type: 'deposit', amount: 75, balanceAfter: 75, reference: 'Salary' },
      { type: 'withdrawal', amount: 850, balanceAfter: 0, reference: 'Rent' },
      { type: 'deposit', amount: 50, balanceAfter: 850, reference: null },
      { type: 'withdrawal', amount: 200, balanceAfter: 800, reference: null },
      { type: 'deposit', amount: 1000, balanceAfter: 1000, reference: null },
    ]);

    // The tables equal what the stored events say (upcast by hand here).
    const expectedMovements = (
      await rows<StoredRow & { position: string }>(
        t.dataSource,
        `SELECT position, version, type, schema_version, data FROM events WHERE type IN ('accounts.MoneyDeposited', 'accounts.MoneyWithdrawn') ORDER BY position`,
      )
    ).map((row) => ({
      position: Number(row.position),
      accountId: row.data.accountId,
      type: MOVEMENT_TYPE[row.type],
      amount: row.data.amount,
      balanceAfter: row.data.balanceAfter,
      reference: asCurrent({ ...row, position: Number(row.position) }).data.reference,
    }));
    const readMovements = async () =>
      (
        await rows<Record<string, any>>(
          t.dataSource,
          `SELECT position, account_id::text, type, amount, balance_after, reference FROM account_transactions WHERE type IN ('deposit', 'withdrawal') ORDER BY position`,
        )
      ).map((row) => ({
        position: Number(row.position),
        accountId: row.account_id,
        type: row.type,
        amount: Number(row.amount),
        balanceAfter: Number(row.balance_after),
        reference: row.reference,
      }));
    const readSummaries = () =>
      rows<Record<string, any>>(
        t.dataSource,
        'SELECT id::text, owner_name, currency, balance::text, status, version, opened_position::text, last_position::text FROM account_summaries ORDER BY id',
      );
    expect(await readMovements()).toEqual(expectedMovements);
    const liveSummaries = await readSummaries();
    const liveTransactions = await rows(t.dataSource, 'SELECT * FROM account_transactions ORDER BY position');
    expect(liveSummaries.find((row) => row.id === old)).toEqual(expect.objectContaining({ balance: '0', status: 'closed', version: 4 }));

    // Damage both tables, so that only a rebuild from the (upcast) log can make them right again.
    await t.dataSource.query(`UPDATE account_transactions SET reference = 'damaged'`);
    await t.dataSource.query('DELETE FROM account_summaries WHERE id = $1', [old]);
    expect(await readMovements()).not.toEqual(expectedMovements);

    for (const name of ['account-summary', 'account-transactions']) {
      const requested = await t.http.post(`/admin/projections/${name}/rebuild`);
      expect({ name, status: requested.status }).toEqual({ name, status: 202 });
      const requestedAt = Date.parse(requested.body.rebuild.requestedAt);
      await eventually(
        `the rebuild of ${name}`,
        async () => {
          const status = await t.http.get(`/admin/projections/${name}`);
          return status.body.rebuild === null && Date.parse(status.body.lastRebuildCompletedAt) >= requestedAt ? status.body : undefined;
        },
        30_000,
      );
    }
    expect(await readSummaries()).toEqual(liveSummaries);
    expect(await rows(t.dataSource, 'SELECT * FROM account_transactions ORDER BY position')).toEqual(liveTransactions);
    expect(await readMovements()).toEqual(expectedMovements);

    // And the log itself was never rewritten.
    const stillLegacy = await rows<{ n: number }>(
      t.dataSource,
      "SELECT count(*)::int AS n FROM events WHERE position = ANY($1) AND schema_version = 1 AND NOT data ? 'reference'",
      [legacyPositions],
    );
    expect(stillLegacy[0].n).toBe(5);
  });
});
