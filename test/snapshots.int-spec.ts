import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CommandBus } from '@nestjs/cqrs';
import { accountDecider, accountStreamId } from '../src/accounts/account.js';
import { DepositMoney } from '../src/accounts/deposit-money/deposit-money.command.js';
import { CreditForTransfer, DebitForTransfer } from '../src/accounts/transfer-legs/transfer-leg.commands.js';
import { WithdrawMoney } from '../src/accounts/withdraw-money/withdraw-money.command.js';
import { AggregateLoader, EventStore, fold } from '../src/event-sourcing/index.js';
import { type ApiEvent, accountEvents, foldAccount } from './support/history-fold.js';
import { expectProblemAnswer } from './support/problem.js';
import { eventually, rows } from './support/projection-fixtures.js';
import { LedgerAccount } from './support/ledger-writers.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// Snapshots are a cache: an aggregate loaded from the newest usable snapshot plus the events after
// it must be exactly the aggregate folded from its whole stream, whatever the interval, with no
// snapshot at all, and with snapshots of another schema version (which must be ignored). Several
// instances of the service share one database here, each with its own SNAPSHOT_INTERVALS.
//
// The reference is the aggregate folded from its whole stream (EventStore.readStream + evolve, no
// snapshot), checked in turn against an independent fold of the API's events for what the API shows
// (balance, status, version, position, transfer legs). The tests take the snapshot schema version
// and JSON shape from the account's codec, so they survive a change of the state's shape.

const codec = accountDecider.snapshots!;
const CURRENT_SCHEMA = codec.schemaVersion;

let a: TestApp; // account:100
let b: TestApp | undefined; // account:0 — never snapshots, never reads them
let c: TestApp | undefined; // account:7
beforeAll(async () => {
  a = await startInstance({ SNAPSHOT_INTERVALS: 'account:100' });
});
afterAll(async () => {
  await b?.close();
  await c?.close();
  await a?.close();
});

async function post(t: TestApp, path: string, body?: object): Promise<Record<string, any>> {
  const response = await t.http.post(path).send(body);
  if (response.status >= 300) throw new Error(`POST ${path} answered ${response.status}: ${JSON.stringify(response.body)}`);
  return response.body;
}

/**
 * Deposits and withdrawals until the account's stream is at `version` (the account must be open),
 * through the instance's CommandBus: the path of an HTTP command from the handler on (load with
 * snapshot, decide, append, snapshot after crossing the interval), without the HTTP round trip.
 */
async function writeUntil(t: TestApp, id: string, from: number, version: number): Promise<void> {
  const bus = t.app.get(CommandBus);
  for (let current = from; current < version; current++) {
    const result = await bus.execute(current % 4 === 3 ? new WithdrawMoney(id, 7) : new DepositMoney(id, 10 + (current % 13)));
    expect(result.version).toBe(current + 1);
  }
}

/**
 * Brings the account's stream to `version`: straight through the EventStore (one transaction, no
 * snapshot taken) up to `version - viaCommands`, then through commands, so that the interval
 * multiples a test cares about are crossed by commands — which is when snapshots are written.
 */
async function grow(t: TestApp, account: LedgerAccount, version: number, viaCommands: number): Promise<void> {
  if (account.version > 0) {
    const full = await fullFold(t, account.id);
    account.version = full.version;
    account.balance = full.state.balance;
  }
  const direct = version - viaCommands - account.version - (account.version === 0 ? 1 : 0);
  if (direct > 0) {
    const amounts = Array.from({ length: direct }, (_, index) => (index % 5 === 4 ? -9 : 11 + (index % 17)));
    await t.app.get(EventStore).transaction((tx) => account.write(tx, amounts));
  }
  await writeUntil(t, account.id, account.version, version);
}

/** An instance of the service listening on a port (supertest then reuses it instead of one server per request). */
async function startInstance(env: Record<string, string>, database?: TestApp['database']): Promise<TestApp> {
  const t = await startTestApp(env, database);
  await t.app.listen(0, '127.0.0.1');
  return t;
}

interface SnapshotRow {
  aggregate: string;
  schema_version: number;
  version: number;
  position: string;
  state: Record<string, any>;
}

/** The newest snapshot row of the account (older ones are kept for time travel). */
async function snapshotOf(t: TestApp, id: string): Promise<SnapshotRow | undefined> {
  const [row] = await rows<SnapshotRow>(
    t.dataSource,
    'SELECT aggregate, schema_version, version, position, state FROM snapshots WHERE stream_id = $1 ORDER BY version DESC, schema_version DESC LIMIT 1',
    [accountStreamId(id)],
  );
  return row;
}

async function snapshotVersions(t: TestApp, id: string): Promise<number[]> {
  const found = await rows<{ version: number }>(t.dataSource, 'SELECT version FROM snapshots WHERE stream_id = $1 ORDER BY version', [
    accountStreamId(id),
  ]);
  return found.map((row) => row.version);
}

/** The aggregate folded from its whole stream (up to `toVersion`), no snapshot involved. */
async function fullFold(t: TestApp, id: string, toVersion?: number) {
  const events = await t.app.get(EventStore).readStream(accountStreamId(id), toVersion === undefined ? {} : { toVersion });
  const state = fold(
    accountDecider,
    events.map((event) => event.data as never),
  );
  return { state: { ...state } as Record<string, any>, version: events.at(-1)!.version, position: events.at(-1)!.position };
}

const STEP_OF: Record<string, string> = {
  'accounts.TransferDebited': 'debit',
  'accounts.TransferCredited': 'credit',
  'accounts.TransferRefunded': 'refund',
};

/**
 * What the loaded aggregate must be: the full fold, which must itself agree with an independent fold
 * of the API's events on everything the API shows (and hold every transfer leg applied).
 */
async function expectedAggregate(t: TestApp, id: string, events: readonly ApiEvent[]) {
  const full = await fullFold(t, id);
  const view = foldAccount(events);
  const state = full.state as Record<string, any>;
  expect({
    status: state.status,
    accountId: state.accountId,
    ownerName: state.ownerName,
    currency: state.currency,
    balance: state.balance,
  }).toEqual({
    status: view.status,
    accountId: view.id,
    ownerName: view.ownerName,
    currency: view.currency,
    balance: view.balance,
  });
  expect({ version: full.version, position: full.position }).toEqual({ version: view.version, position: events.at(-1)!.position });
  const legs = events.filter((event) => STEP_OF[event.type]).map((event) => `${STEP_OF[event.type]}:${event.data.transferId}`);
  expect([...state.transferSteps]).toEqual(expect.arrayContaining(legs));
  return full;
}

/** The row a snapshot at `version` must be: the codec's JSON of the full fold up to that version. */
async function expectedSnapshotRow(t: TestApp, id: string, version: number) {
  const upTo = await fullFold(t, id, version);
  return {
    aggregate: codec.aggregate,
    schema_version: CURRENT_SCHEMA,
    version,
    position: String(upTo.position),
    state: JSON.parse(JSON.stringify(codec.encode(upTo.state as never))),
  };
}

async function load(t: TestApp, id: string) {
  const loaded = await t.app.get(AggregateLoader).load(accountStreamId(id), accountDecider);
  return { ...loaded, state: { ...loaded.state } as Record<string, any> };
}

/**
 * What every instance must agree on: the loaded aggregate equals the full fold, a withdrawal of one
 * more than the balance is refused naming that balance, and a deposit decided on the loaded state
 * records the right balanceAfter at the next version.
 */
async function expectConsistent(id: string, instances: Array<[string, TestApp]>): Promise<void> {
  for (const [name, t] of instances) {
    const events = await accountEvents(t, id);
    const expected = await expectedAggregate(t, id, events);
    expect({ name, loaded: await load(t, id) }).toEqual({ name, loaded: expected });
    const refused = await t.http.post(`/accounts/${id}/withdrawals`).send({ amount: expected.state.balance + 1 });
    expect({ name, balance: expectProblemAnswer(refused, 422, 'ACCOUNT_INSUFFICIENT_FUNDS').balance }).toEqual({
      name,
      balance: expected.state.balance,
    });
    const deposited = await post(t, `/accounts/${id}/deposits`, { amount: 3 });
    const after = await accountEvents(t, id);
    expect({ name, version: deposited.version, last: after.at(-1)!.data }).toEqual({
      name,
      version: expected.version + 1,
      last: { accountId: id, amount: 3, balanceAfter: expected.state.balance + 3, reference: null },
    });
  }
}

describe('account snapshots', () => {
  const account = new LedgerAccount('Snapshot Sam');
  const id = account.id;

  it('a snapshot is written when the stream crosses a multiple of the interval, holding the state at that version', async () => {
    await grow(a, account, 99, 5);
    expect(await snapshotOf(a, id)).toBeUndefined();
    await writeUntil(a, id, 99, 100);
    let events = await accountEvents(a, id);
    expect(await snapshotOf(a, id)).toEqual(await expectedSnapshotRow(a, id, 100));
    expect((await snapshotOf(a, id))!.state.balance).toBe(foldAccount(events.slice(0, 100)).balance);
    await grow(a, account, 203, 5); // crosses 200 through commands
    await grow(a, account, 251, 3);
    events = await accountEvents(a, id);
    expect(events).toHaveLength(251);
    expect(await snapshotOf(a, id)).toEqual(await expectedSnapshotRow(a, id, 200));
    expect((await snapshotOf(a, id))!.state.balance).toBe(foldAccount(events.slice(0, 200)).balance);
    // The one at 100 is kept (time travel starts from it), unchanged.
    expect(await snapshotVersions(a, id)).toEqual([100, 200]);
    const [kept] = await rows<SnapshotRow>(
      a.dataSource,
      'SELECT aggregate, schema_version, version, position, state FROM snapshots WHERE stream_id = $1 AND version = 100',
      [accountStreamId(id)],
    );
    expect(kept).toEqual(await expectedSnapshotRow(a, id, 100));
  });

  it('the loaded state and the answers are the same with the snapshot, with snapshots off (account:0, same database) and after DELETE FROM snapshots', async () => {
    b = await startInstance({ SNAPSHOT_INTERVALS: 'account:0' }, a.database);
    await expectConsistent(id, [
      ['account:100', a],
      ['account:0', b],
    ]);
    expect((await snapshotOf(a, id))?.version).toBe(200); // still there, still used by a
    await a.dataSource.query('DELETE FROM snapshots');
    await expectConsistent(id, [
      ['account:100 without snapshots', a],
      ['account:0', b],
    ]);
    expect(await snapshotOf(a, id)).toBeUndefined(); // no multiple of 100 crossed since
  });

  it('a snapshot of another schema version (older, newer, garbage or plausible but wrong) is ignored, then replaced', async () => {
    const events = await accountEvents(a, id);
    const version = events.length;
    const position = events.at(-1)!.position;
    const current = (await expectedSnapshotRow(a, id, version)).state;
    const wrong = { ...current, balance: 999_999_999, status: 'closed' };
    // The only snapshot at the stream's current version becomes this one (the newest: loading would start from it).
    const insert = async (schemaVersion: number, state: unknown) => {
      await a.dataSource.query('DELETE FROM snapshots WHERE stream_id = $1 AND version = $2', [accountStreamId(id), version]);
      await a.dataSource.query(
        `INSERT INTO snapshots (stream_id, aggregate, schema_version, version, position, state) VALUES ($1, 'account', $2, $3, $4, $5)`,
        [accountStreamId(id), schemaVersion, version, position, JSON.stringify(state)],
      );
    };

    // Control: at the current schema version the (wrong) snapshot IS used — so the cases below prove something.
    await insert(CURRENT_SCHEMA, wrong);
    expect((await load(a, id)).state.balance).toBe(999_999_999);

    const expected = await expectedAggregate(a, id, events);
    for (const [schemaVersion, state] of [
      [CURRENT_SCHEMA - 1, wrong],
      [CURRENT_SCHEMA - 1, { garbage: true }],
      [CURRENT_SCHEMA - 1, 'not even an object'],
      [CURRENT_SCHEMA + 1, { garbage: true }],
      [CURRENT_SCHEMA + 1, wrong],
    ] as Array<[number, unknown]>) {
      await insert(schemaVersion, state);
      expect({ schemaVersion, loaded: await load(a, id) }).toEqual({ schemaVersion, loaded: expected });
    }
    // An existing row altered to an older schema version: ignored as well.
    await insert(CURRENT_SCHEMA, wrong);
    await a.dataSource.query('UPDATE snapshots SET schema_version = schema_version - 1 WHERE stream_id = $1', [accountStreamId(id)]);
    await expectConsistent(id, [['account:100 with an old-schema snapshot', a]]);

    // The next multiple of the interval replaces it with a snapshot of the current schema version.
    await grow(a, account, 300, 3);
    const after = await accountEvents(a, id);
    expect(after.length).toBeGreaterThanOrEqual(300);
    expect(await snapshotOf(a, id)).toEqual(await expectedSnapshotRow(a, id, 300));
    await expectConsistent(id, [
      ['account:100', a],
      ['account:0', b!],
    ]);
  });

  it('with account:7, snapshots follow every 7th version and every instance still agrees', async () => {
    c = await startInstance({ SNAPSHOT_INTERVALS: 'account:7' }, a.database);
    const seven = new LedgerAccount('Seven');
    const other = seven.id;
    await grow(c, seven, 251, 9); // the last commands cross 245
    expect(await accountEvents(c, other)).toHaveLength(251);
    expect(await snapshotOf(c, other)).toEqual(await expectedSnapshotRow(c, other, 245));
    await expectConsistent(other, [
      ['account:7', c],
      ['account:100', a],
      ['account:0', b!],
    ]);
    await c.dataSource.query('DELETE FROM snapshots WHERE stream_id = $1', [accountStreamId(other)]);
    await expectConsistent(other, [['account:7 without snapshots', c]]);
  });

  it('transfer legs survive a snapshot round trip: a repeated DebitForTransfer / CreditForTransfer after it is still a no-op', async () => {
    const t = c!;
    const source = (await post(t, '/accounts', { ownerName: 'Leg Source', currency: 'EUR' })).id;
    await post(t, `/accounts/${source}/deposits`, { amount: 1000 });
    const target = (await post(t, '/accounts', { ownerName: 'Leg Target', currency: 'EUR' })).id;
    const transfer = await post(t, '/transfers', { fromAccountId: source, toAccountId: target, amount: 250 });
    await eventually('the transfer to complete', async () => {
      const page = await t.http.get('/events').query({ stream: `transfer-${transfer.id}`, type: 'transfers.TransferCompleted' });
      return page.body.items.length === 1 ? true : undefined;
    });

    // Carry both accounts past a multiple of 7 through the instance with account:7: the snapshot is
    // taken after the leg, so loading starts from it and the leg's event is not among the events after it.
    for (const id of [source, target]) {
      const version = (await accountEvents(t, id)).length;
      await writeUntil(t, id, version, Math.ceil((version + 1) / 7) * 7);
    }
    const sourceSnapshot = await snapshotOf(t, source);
    const targetSnapshot = await snapshotOf(t, target);
    const debitedAt = (await accountEvents(t, source)).find((event) => event.type === 'accounts.TransferDebited')!.version;
    const creditedAt = (await accountEvents(t, target)).find((event) => event.type === 'accounts.TransferCredited')!.version;
    expect(sourceSnapshot!.version).toBeGreaterThan(debitedAt);
    expect(targetSnapshot!.version).toBeGreaterThan(creditedAt);
    expect(sourceSnapshot!.state.transferSteps).toEqual(expect.arrayContaining([`debit:${transfer.id}`]));
    expect(targetSnapshot!.state.transferSteps).toEqual([`credit:${transfer.id}`]);
    expect(sourceSnapshot).toEqual(await expectedSnapshotRow(t, source, sourceSnapshot!.version));
    expect(targetSnapshot).toEqual(await expectedSnapshotRow(t, target, targetSnapshot!.version));

    // Control: the loader really starts from the snapshot (a snapshot without the legs loses them).
    const newest = [accountStreamId(source), sourceSnapshot!.version];
    await t.dataSource.query(
      `UPDATE snapshots SET state = jsonb_set(state, '{transferSteps}', '[]') WHERE stream_id = $1 AND version = $2`,
      newest,
    );
    expect([...(await load(t, source)).state.transferSteps]).toEqual([]);
    await t.dataSource.query(`UPDATE snapshots SET state = $3::jsonb WHERE stream_id = $1 AND version = $2`, [
      ...newest,
      JSON.stringify(sourceSnapshot!.state),
    ]);

    const bus = t.app.get(CommandBus);
    for (const [id, command] of [
      [source, new DebitForTransfer(source, transfer.id, 250, 'EUR')],
      [target, new CreditForTransfer(target, transfer.id, 250, 'EUR')],
    ] as const) {
      const before = await accountEvents(t, id);
      const result = await bus.execute(command);
      expect({ events: result.events, version: result.version }).toEqual({ events: [], version: before.length });
      expect(await accountEvents(t, id)).toEqual(before);
      expect(await load(t, id)).toEqual(await expectedAggregate(t, id, before));
    }
  });
});

describe('a snapshot that cannot be written', () => {
  // A trigger makes every snapshot write fail; "a cache only: failing to write one only costs speed".
  beforeAll(async () => {
    await a.dataSource.query(`CREATE FUNCTION refuse_snapshot() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'snapshot refused by the test'; END $$`);
    await a.dataSource.query(
      'CREATE TRIGGER refuse_snapshot BEFORE INSERT OR UPDATE ON snapshots FOR EACH ROW EXECUTE FUNCTION refuse_snapshot()',
    );
  });
  afterAll(async () => {
    await a.dataSource.query('DROP TRIGGER IF EXISTS refuse_snapshot ON snapshots');
    await a.dataSource.query('DROP FUNCTION IF EXISTS refuse_snapshot()');
  });

  async function depositCrossing(headers: Record<string, string>) {
    const account = new LedgerAccount('Unsnapshottable');
    await grow(a, account, 99, 2);
    const request = a.http.post(`/accounts/${account.id}/deposits`).send({ amount: 1 });
    for (const [name, value] of Object.entries(headers)) request.set(name, value);
    const response = await request;
    return { account, response, events: await accountEvents(a, account.id) };
  }

  it('a command crossing the interval still succeeds (no snapshot row); the account loads from its events', async () => {
    const { account, response, events } = await depositCrossing({});
    expect({ status: response.status, version: response.body.version }).toEqual({ status: 200, version: 100 });
    expect(events).toHaveLength(100);
    expect(await snapshotOf(a, account.id)).toBeUndefined();
    expect(await load(a, account.id)).toEqual(await expectedAggregate(a, account.id, events));
  });

  // Inside a caller's transaction — every POST with an Idempotency-Key runs in one — a failed
  // INSERT INTO snapshots must not abort that transaction (it did: 500 and the event rolled back).
  it('a command crossing the interval with an Idempotency-Key still succeeds', async () => {
    const { response, events } = await depositCrossing({ 'Idempotency-Key': `snapshot-${Date.now()}-${Math.random()}` });
    expect({ status: response.status, code: response.body.code, version: response.body.version, events: events.length }).toEqual({
      status: 200,
      code: undefined,
      version: 100,
      events: 100,
    });
  });
});
