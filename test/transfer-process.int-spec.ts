import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { accountStreamId } from '../src/accounts/account.js';
import { TransferCredited, TransferDebited, TransferRefunded, TransferSettled } from '../src/accounts/account.events.js';
import { EventStore, NO_STREAM } from '../src/event-sourcing/index.js';
import { transferStreamId } from '../src/transfers/transfer.js';
import { CreditRefused, SourceDebited, TargetCredited, TransferCompleted, TransferRequested } from '../src/transfers/transfer.events.js';
import { LedgerClient } from './support/ledger-client.js';
import { foldAsTables, foldLedger, readTables, rowsOf, waitUntilSettled } from './support/ledger-fold.js';
import { type AppProcess, call, startAppProcess } from './support/app-process.js';
import { type TestApp, startTestApp } from './support/test-app.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

// The transfer process manager under crashes and replays, against a real PostgreSQL. Its promise:
// exactly once in effect — restarted after a crash between any two steps, or replayed from an older
// checkpoint, it redoes nothing that was done and never moves money twice.
//
// 1. A real crash: the compiled service (dist/src/main.js) runs in a child process and is killed with
//    SIGKILL in the middle of a unit of work: the source's debit written, the transfer's record of it
//    (SourceDebited, in the same transaction) not yet. The moment is made certain, not guessed: the
//    test pauses the process manager (it holds its checkpoint row, so the runner cannot take its
//    lease) while the transfer is requested, then holds the transfer stream's next version (an
//    uncommitted row at that version) so that recording the debit waits, and kills the service once
//    it waits there. Nothing of the unit of work may survive. A second crash falls between two units
//    of work (the debit and its record committed, the credit too, the settlement waiting); and the
//    lease is taken away in the middle of a unit of work, whose COMMIT the fence then refuses.
// 2. Crash points built directly in the log through the EventStore (the state a crash leaves behind),
//    then an application is started on it.
// 3. A replay of the process manager from the start of the log.
// 4. Money in flight (debited, neither settled nor refunded), held there by a test-only trigger that makes the next step wait: the
//    source cannot be closed, and deposits keep room for the refund.
//
// A completed transfer settles its source exactly once (accounts.TransferSettled, after the credit
// and before the transfer is recorded completed); a failed one never does.

const TRANSFER_TYPES = ['accounts.TransferDebited', 'accounts.TransferCredited', 'accounts.TransferRefunded', 'accounts.TransferSettled'];

/** The chain (GET /transfers/{id}/events) of a completed transfer. */
const COMPLETED_CHAIN = [
  'transfers.TransferRequested',
  'accounts.TransferDebited',
  'transfers.SourceDebited',
  'accounts.TransferCredited',
  'accounts.TransferSettled',
  'transfers.TargetCredited',
  'transfers.TransferCompleted',
];

async function legCounts(db: pg.Client | TestApp['dataSource'], transferId: string): Promise<Record<string, number>> {
  const rows = await rowsOf<{ type: string; count: number }>(
    db,
    `SELECT type, count(*)::int AS count FROM events WHERE data->>'transferId' = $1 AND type = ANY($2) GROUP BY type`,
    [transferId, TRANSFER_TYPES],
  );
  return Object.fromEntries(rows.map((row) => [row.type, row.count]));
}

async function streamTypes(db: pg.Client | TestApp['dataSource'], streamId: string): Promise<string[]> {
  const rows = await rowsOf<{ type: string }>(db, 'SELECT type FROM events WHERE stream_id = $1 ORDER BY version', [streamId]);
  return rows.map((row) => row.type);
}

/** The fold of the log is sound and every read table equals it. */
async function expectConsistentLedger(db: pg.Client | TestApp['dataSource']): Promise<void> {
  await waitUntilSettled(db);
  const fold = await foldLedger(db);
  expect(fold.violations).toEqual([]);
  expect(await readTables(db)).toEqual(foldAsTables(fold));
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The advisory lock a held step waits on (installStepHold). */
const HOLD_LOCK = 4_242_015;
const waitingOnHold = `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'`;

/**
 * A test-only trigger on `events`: an insert of one of `types` first takes HOLD_LOCK shared, so it
 * waits, inside its transaction, while the test holds that lock (and passes at once otherwise). It
 * lets a test stop the process manager at an exact step of a transfer, after the steps before it
 * have committed, which a held stream version cannot do for a stream version not written yet.
 */
async function installStepHold(url: string, types: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE OR REPLACE FUNCTION test_hold_step() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.type = ANY (TG_ARGV) THEN PERFORM pg_advisory_xact_lock_shared(${HOLD_LOCK}); END IF;
        RETURN NEW;
      END $$`);
    await client.query('GRANT EXECUTE ON FUNCTION test_hold_step() TO PUBLIC');
    const args = types.map((type) => `'${type}'`).join(', ');
    await client.query(`CREATE TRIGGER test_hold_step BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION test_hold_step(${args})`);
  } finally {
    await client.end();
  }
}

describe('the process manager killed (SIGKILL) inside and between its units of work', () => {
  let database: TestDatabase;
  let db: pg.Client;
  const services: AppProcess[] = [];
  const env = { PROJECTION_LEASE_TTL_MS: '1000', PROJECTION_POLL_INTERVAL_MS: '100', LOG_LEVEL: 'warn' };

  beforeAll(async () => {
    database = await createTestDatabase();
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
  });
  afterAll(async () => {
    for (const service of services) await service.kill();
    await db.end();
    await database.drop();
  });

  it('killed between the debit and its record (one unit of work): nothing of it survives; after a restart it completes, debited exactly once', async () => {
    const first = await startAppProcess(database.url, env);
    services.push(first);
    const source = (await call(first.url, 'POST', '/accounts', { ownerName: 'Source', currency: 'EUR' })).body.id as string;
    const target = (await call(first.url, 'POST', '/accounts', { ownerName: 'Target', currency: 'EUR' })).body.id as string;
    expect((await call(first.url, 'POST', `/accounts/${source}/deposits`, { amount: 1000 })).status).toBe(200);

    // Pause the process manager: its runner cannot take (or renew) its lease while the row is locked.
    const pause = new pg.Client({ connectionString: database.url });
    await pause.connect();
    await pause.query('BEGIN');
    await pause.query(`SELECT name FROM projection_checkpoints WHERE name = 'transfer-process' FOR UPDATE`);
    const accepted = await call(first.url, 'POST', '/transfers', { fromAccountId: source, toAccountId: target, amount: 300 });
    expect(accepted.status).toBe(202);
    const transferId = accepted.body.id as string;

    // Hold the transfer stream's version 2: recording SourceDebited will wait on it.
    const hold = new pg.Client({ connectionString: database.url });
    await hold.connect();
    await hold.query('BEGIN');
    await hold.query(
      `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
       VALUES ($1, 2, 'test.Hold', 1, $2, '{}', '{}')`,
      [transferStreamId(transferId), randomUUID()],
    );
    await pause.query('COMMIT');
    await pause.end();

    try {
      // The debit is written on the account (uncommitted, in the unit of work), and the manager waits
      // to record it in the same transaction.
      await until('the process manager to wait on the held version', async () => {
        const { rows } = await db.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO events%'`,
        );
        return rows.length > 0 ? true : undefined;
      });
      await first.kill();
      // A crashed client's session ends on the server too. The waiting append is a statement of its
      // own (it commits by itself), and a backend waiting on a lock does not notice its client is
      // gone: end that session, as the server eventually does, so the append never lands.
      await db.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO events%'`,
      );
    } finally {
      await hold.query('ROLLBACK');
      await hold.end();
    }

    // What the crash left: nothing of the unit of work. The debit and its record commit together or
    // not at all: the account is not debited, the transfer only requested.
    expect(await streamTypes(db, transferStreamId(transferId))).toEqual(['transfers.TransferRequested']);
    expect(await legCounts(db, transferId)).toEqual({});

    const second = await startAppProcess(database.url, env);
    services.push(second);
    const transfer = await until('the transfer to complete after the restart', async () => {
      const response = await call(second.url, 'GET', `/transfers/${transferId}`);
      return response.status === 200 && response.body.status !== 'pending' ? response.body : undefined;
    });
    expect(transfer).toEqual(expect.objectContaining({ status: 'completed', failureCode: null, refunded: false, amount: 300 }));
    expect(await streamTypes(db, transferStreamId(transferId))).toEqual([
      'transfers.TransferRequested',
      'transfers.SourceDebited',
      'transfers.TargetCredited',
      'transfers.TransferCompleted',
    ]);
    expect(await legCounts(db, transferId)).toEqual({
      'accounts.TransferDebited': 1,
      'accounts.TransferCredited': 1,
      'accounts.TransferSettled': 1,
    });

    await waitUntilSettled(db);
    const balances = async (id: string) => (await call(second.url, 'GET', `/accounts/${id}`)).body.balance;
    expect({ source: await balances(source), target: await balances(target) }).toEqual({ source: 700, target: 300 });
    // the steps after the restart still belong to the transfer's chain
    const chain = (await call(second.url, 'GET', `/transfers/${transferId}/events`)).body.items as Array<Record<string, any>>;
    expect(chain.map((event) => event.type)).toEqual(COMPLETED_CHAIN);
    // settled: the emptied source may be closed
    expect((await call(second.url, 'POST', `/accounts/${source}/withdrawals`, { amount: 700 })).status).toBe(200);
    expect((await call(second.url, 'POST', `/accounts/${source}/close`)).status).toBe(200);
    await expectConsistentLedger(db);
    await second.stop();
  });
});

describe('a crash between two units of work, and a lease lost inside one', () => {
  let database: TestDatabase;
  let db: pg.Client;
  const services: AppProcess[] = [];
  const env = { PROJECTION_LEASE_TTL_MS: '1000', PROJECTION_POLL_INTERVAL_MS: '100', LOG_LEVEL: 'warn' };
  const waitingInsert = `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO events%'`;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
  });
  afterAll(async () => {
    for (const service of services) await service.kill();
    await db.end();
    await database.drop();
  });

  /**
   * Requests a transfer of 300 while the process manager is paused, holds the transfer stream's
   * `version` with an uncommitted row and lets the manager go: resolves once it waits on that row.
   */
  async function requestHeldAt(
    url: string,
    version: number,
  ): Promise<{ transferId: string; source: string; target: string; hold: pg.Client }> {
    const source = (await call(url, 'POST', '/accounts', { ownerName: 'Source', currency: 'EUR' })).body.id as string;
    const target = (await call(url, 'POST', '/accounts', { ownerName: 'Target', currency: 'EUR' })).body.id as string;
    expect((await call(url, 'POST', `/accounts/${source}/deposits`, { amount: 1000 })).status).toBe(200);
    const pause = new pg.Client({ connectionString: database.url });
    await pause.connect();
    await pause.query('BEGIN');
    await pause.query(`SELECT name FROM projection_checkpoints WHERE name = 'transfer-process' FOR UPDATE`);
    const accepted = await call(url, 'POST', '/transfers', { fromAccountId: source, toAccountId: target, amount: 300 });
    expect(accepted.status).toBe(202);
    const transferId = accepted.body.id as string;
    const hold = new pg.Client({ connectionString: database.url });
    await hold.connect();
    await hold.query('BEGIN');
    await hold.query(
      `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata) VALUES ($1, $2, 'test.Hold', 1, $3, '{}', '{}')`,
      [transferStreamId(transferId), version, randomUUID()],
    );
    await pause.query('COMMIT');
    await pause.end();
    await until('the process manager to wait on the held version', async () =>
      (await db.query(waitingInsert)).rows.length > 0 ? true : undefined,
    );
    return { transferId, source, target, hold };
  }

  it('killed after the credit, its settlement waiting: the debit and its record stand, and after a restart nothing is repeated', async () => {
    const first = await startAppProcess(database.url, env);
    services.push(first);
    await installStepHold(database.url, ['accounts.TransferSettled']);
    const hold = new pg.Client({ connectionString: database.url });
    await hold.connect();
    let transferId: string;
    try {
      await hold.query('SELECT pg_advisory_lock($1)', [HOLD_LOCK]);
      const source = (await call(first.url, 'POST', '/accounts', { ownerName: 'Source', currency: 'EUR' })).body.id as string;
      const target = (await call(first.url, 'POST', '/accounts', { ownerName: 'Target', currency: 'EUR' })).body.id as string;
      expect((await call(first.url, 'POST', `/accounts/${source}/deposits`, { amount: 1000 })).status).toBe(200);
      const accepted = await call(first.url, 'POST', '/transfers', { fromAccountId: source, toAccountId: target, amount: 300 });
      expect(accepted.status).toBe(202);
      transferId = accepted.body.id as string;
      // The settlement (written first in the second unit of work) waits on the hold.
      await until('the process manager to wait on the hold', async () =>
        (await db.query(waitingOnHold)).rows.length > 0 ? true : undefined,
      );
      await first.kill();
      await db.query(`SELECT pg_terminate_backend(pid) FROM (${waitingOnHold}) waiting`); // as the server would, in time
    } finally {
      await hold.end(); // releases the lock
    }
    // The first unit of work committed whole; the credit (its own transaction) too; the settlement
    // and the completion (the second unit of work) not at all.
    expect(await streamTypes(db, transferStreamId(transferId!))).toEqual(['transfers.TransferRequested', 'transfers.SourceDebited']);
    expect(await legCounts(db, transferId!)).toEqual({ 'accounts.TransferDebited': 1, 'accounts.TransferCredited': 1 });

    const second = await startAppProcess(database.url, env);
    services.push(second);
    await until('the transfer to complete after the restart', async () => {
      const response = await call(second.url, 'GET', `/transfers/${transferId}`);
      return response.status === 200 && response.body.status === 'completed' ? true : undefined;
    });
    expect(await legCounts(db, transferId!)).toEqual({
      'accounts.TransferDebited': 1,
      'accounts.TransferCredited': 1,
      'accounts.TransferSettled': 1,
    });
    await expectConsistentLedger(db);
    await second.stop();
  });

  it('its lease taken over inside a unit of work: the fence refuses its COMMIT, nothing of it lands, and the next holder completes it once', async () => {
    const service = await startAppProcess(database.url, env);
    services.push(service);
    const { transferId, source, target, hold } = await requestHeldAt(service.url, 2);
    try {
      // Another holder takes the lease while the unit of work (the debit written, its record waiting) runs.
      await db.query(
        `UPDATE projection_checkpoints SET lease_owner = 'intruder', lease_token = lease_token + 1,
                lease_expires_at = clock_timestamp() + interval '1 hour' WHERE name = 'transfer-process'`,
      );
    } finally {
      await hold.query('ROLLBACK'); // the record goes in; the fence before COMMIT must refuse it all
      await hold.end();
    }
    await until('the unit of work to end', async () => ((await db.query(waitingInsert)).rows.length === 0 ? true : undefined));
    for (let look = 0; look < 10; look++) {
      expect(await legCounts(db, transferId)).toEqual({});
      expect(await streamTypes(db, transferStreamId(transferId))).toEqual(['transfers.TransferRequested']);
      await sleep(100);
    }
    // The intruder goes away: the service takes the lease back and finishes the transfer.
    await db.query(
      `UPDATE projection_checkpoints SET lease_expires_at = clock_timestamp() - interval '1 second' WHERE name = 'transfer-process'`,
    );
    await until('the transfer to complete', async () => {
      const response = await call(service.url, 'GET', `/transfers/${transferId}`);
      return response.status === 200 && response.body.status === 'completed' ? true : undefined;
    });
    expect(await legCounts(db, transferId)).toEqual({
      'accounts.TransferDebited': 1,
      'accounts.TransferCredited': 1,
      'accounts.TransferSettled': 1,
    });
    await waitUntilSettled(db);
    const balance = async (id: string) => (await call(service.url, 'GET', `/accounts/${id}`)).body.balance;
    expect({ source: await balance(source), target: await balance(target) }).toEqual({ source: 700, target: 300 });
    await expectConsistentLedger(db);
    await service.stop();
  });
});

describe('crash points built in the log, then an application started on it', () => {
  // Each case writes, through the EventStore of an application whose projections are off, the log a
  // crash at that point leaves behind (the same events, correlation and actor the process manager
  // would write), then starts the application with its projections and lets the process finish.
  let database: TestDatabase;
  let writer: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase();
    writer = await startTestApp({ PROJECTIONS_ENABLED: 'false' }, database);
  });
  afterAll(async () => {
    await writer.close();
    await database.drop();
  });

  async function openAccount(balance: number, currency = 'EUR'): Promise<string> {
    const opened = await writer.http.post('/accounts').send({ ownerName: 'Built', currency });
    expect(opened.status).toBe(201);
    if (balance > 0) expect((await writer.http.post(`/accounts/${opened.body.id}/deposits`).send({ amount: balance })).status).toBe(200);
    return opened.body.id;
  }

  /** Appends events to a stream at its current version, in the transfer's correlation, as the process manager. */
  async function append(streamId: string, events: object[], correlationId: string, actor = 'transfer-process'): Promise<void> {
    const store = writer.app.get(EventStore);
    const version = await store.streamVersion(streamId);
    await store.append(streamId, events, {
      expectedVersion: version === 0 ? NO_STREAM : version,
      metadata: { correlationId, causationId: randomUUID(), actor },
    });
  }

  async function balanceInLog(accountId: string): Promise<number> {
    const [row] = await rowsOf<{
      balance: string | null;
    }> // bigint: pg answers a string
    (
      writer.dataSource,
      `SELECT (data->>'balanceAfter')::bigint AS balance FROM events WHERE stream_id = $1 AND data ? 'balanceAfter' ORDER BY version DESC LIMIT 1`,
      [accountStreamId(accountId)],
    );
    return Number(row?.balance ?? 0);
  }

  interface Built {
    transferId: string;
    source: string;
    target: string;
  }

  /** TransferRequested, then the given steps (each a stream and its events). */
  async function build(amount: number, steps: (built: Built) => Array<[string, object[]]>, target?: string): Promise<Built> {
    const source = await openAccount(1000);
    const built: Built = { transferId: randomUUID(), source, target: target ?? (await openAccount(0)) };
    const correlationId = `built-${built.transferId}`;
    await append(
      transferStreamId(built.transferId),
      [
        new TransferRequested({
          transferId: built.transferId,
          fromAccountId: source,
          toAccountId: built.target,
          amount,
          currency: 'EUR',
          reference: null,
        }),
      ],
      correlationId,
      'anonymous',
    );
    for (const [streamId, events] of steps(built)) await append(streamId, events, correlationId);
    return built;
  }

  it('debited but not recorded; credited but not recorded; refunded but not recorded: each finishes, no leg twice', async () => {
    // a: the source debited, SourceDebited not recorded
    const debited = await build(300, ({ transferId, source }) => [
      [accountStreamId(source), [new TransferDebited({ accountId: source, transferId, amount: 300, balanceAfter: 700 })]],
    ]);
    // b: the target credited too, TargetCredited not recorded
    const credited = await build(200, ({ transferId, source, target }) => [
      [accountStreamId(source), [new TransferDebited({ accountId: source, transferId, amount: 200, balanceAfter: 800 })]],
      [transferStreamId(transferId), [new SourceDebited({ transferId })]],
      [accountStreamId(target), [new TransferCredited({ accountId: target, transferId, amount: 200, balanceAfter: 200 })]],
    ]);
    // c: the credit refused (target closed), the source refunded, SourceRefunded not recorded
    const closedTarget = await openAccount(0);
    expect((await writer.http.post(`/accounts/${closedTarget}/close`)).status).toBe(200);
    const refunded = await build(
      400,
      ({ transferId, source }) => [
        [accountStreamId(source), [new TransferDebited({ accountId: source, transferId, amount: 400, balanceAfter: 600 })]],
        [
          transferStreamId(transferId),
          [new SourceDebited({ transferId }), new CreditRefused({ transferId, code: 'ACCOUNT_CLOSED', reason: 'closed' })],
        ],
        [accountStreamId(source), [new TransferRefunded({ accountId: source, transferId, amount: 400, balanceAfter: 1000 })]],
      ],
      closedTarget,
    );
    // e: the target credited and the source settled, TargetCredited not recorded: neither is repeated
    const creditedAndSettled = await build(150, ({ transferId, source, target }) => [
      [accountStreamId(source), [new TransferDebited({ accountId: source, transferId, amount: 150, balanceAfter: 850 })]],
      [transferStreamId(transferId), [new SourceDebited({ transferId })]],
      [accountStreamId(target), [new TransferCredited({ accountId: target, transferId, amount: 150, balanceAfter: 150 })]],
      [accountStreamId(source), [new TransferSettled({ accountId: source, transferId, amount: 150 })]],
    ]);
    // d: the source debited, not recorded, and the target closed since: the debit is not repeated,
    //    the credit is refused and the source refunded once
    const closedSince = await openAccount(0);
    const debitedThenClosed = await build(
      250,
      ({ transferId, source }) => [
        [accountStreamId(source), [new TransferDebited({ accountId: source, transferId, amount: 250, balanceAfter: 750 })]],
      ],
      closedSince,
    );
    expect((await writer.http.post(`/accounts/${closedSince}/close`)).status).toBe(200);

    const app = await startTestApp({ PROJECTION_POLL_INTERVAL_MS: '100' }, database);
    try {
      const ledger = new LedgerClient(app);
      const outcome = async (built: Built) => {
        const transfer = await ledger.settled(built.transferId);
        return {
          status: transfer.status,
          failureCode: transfer.failureCode,
          refunded: transfer.refunded,
          legs: await legCounts(app.dataSource, built.transferId),
          source: await balanceInLog(built.source),
          target: await balanceInLog(built.target),
        };
      };
      const completedLegs = { 'accounts.TransferDebited': 1, 'accounts.TransferCredited': 1, 'accounts.TransferSettled': 1 };
      expect(await outcome(debited)).toEqual({
        status: 'completed',
        failureCode: null,
        refunded: false,
        legs: completedLegs,
        source: 700,
        target: 300,
      });
      expect(await outcome(credited)).toEqual({
        status: 'completed',
        failureCode: null,
        refunded: false,
        legs: completedLegs,
        source: 800,
        target: 200,
      });
      expect(await outcome(creditedAndSettled)).toEqual({
        status: 'completed',
        failureCode: null,
        refunded: false,
        legs: completedLegs,
        source: 850,
        target: 150,
      });
      expect(await outcome(refunded)).toEqual({
        status: 'failed',
        failureCode: 'ACCOUNT_CLOSED',
        refunded: true,
        legs: { 'accounts.TransferDebited': 1, 'accounts.TransferRefunded': 1 },
        source: 1000,
        target: 0,
      });
      expect(await outcome(debitedThenClosed)).toEqual({
        status: 'failed',
        failureCode: 'ACCOUNT_CLOSED',
        refunded: true,
        legs: { 'accounts.TransferDebited': 1, 'accounts.TransferRefunded': 1 },
        source: 1000,
        target: 0,
      });
      // the steps taken after the "crash" carry the transfer's correlation id
      const chain = await ledger.chain(debited.transferId);
      expect(chain.map((event) => event.type)).toEqual(COMPLETED_CHAIN);
      expect(new Set(chain.map((event) => event.metadata.correlationId))).toEqual(new Set([`built-${debited.transferId}`]));
      // the settlement written before the "crash" is the only one
      expect((await ledger.chain(creditedAndSettled.transferId)).map((event) => event.type)).toEqual(COMPLETED_CHAIN);
      await expectConsistentLedger(app.dataSource);
    } finally {
      await app.close();
    }
  });
});

describe('a log written before settlements existed', () => {
  let database: TestDatabase;
  let writer: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase();
    writer = await startTestApp({ PROJECTIONS_ENABLED: 'false' }, database);
  });
  afterAll(async () => {
    await writer.close();
    await database.drop();
  });

  // Regression: transfers completed before settlements existed kept their money in flight for ever.
  // The process manager now settles a transfer it finds completed, and a migration replays it once.
  it('a transfer completed before the upgrade does not keep its source from closing', async () => {
    const opened = await writer.http.post('/accounts').send({ ownerName: 'Before', currency: 'EUR' });
    const target = await writer.http.post('/accounts').send({ ownerName: 'Before', currency: 'EUR' });
    const source = opened.body.id as string;
    expect((await writer.http.post(`/accounts/${source}/deposits`).send({ amount: 300 })).status).toBe(200);
    const transferId = randomUUID();
    const store = writer.app.get(EventStore);
    const write = async (streamId: string, events: object[], actor = 'transfer-process') => {
      const version = await store.streamVersion(streamId);
      await store.append(streamId, events, {
        expectedVersion: version === 0 ? NO_STREAM : version,
        metadata: { correlationId: `old-${transferId}`, causationId: randomUUID(), actor },
      });
    };
    // exactly what the process manager wrote for a completed transfer before settlements existed
    await write(
      transferStreamId(transferId),
      [
        new TransferRequested({
          transferId,
          fromAccountId: source,
          toAccountId: target.body.id,
          amount: 300,
          currency: 'EUR',
          reference: null,
        }),
      ],
      'anonymous',
    );
    await write(accountStreamId(source), [new TransferDebited({ accountId: source, transferId, amount: 300, balanceAfter: 0 })]);
    await write(transferStreamId(transferId), [new SourceDebited({ transferId })]);
    await write(accountStreamId(target.body.id), [
      new TransferCredited({ accountId: target.body.id, transferId, amount: 300, balanceAfter: 300 }),
    ]);
    await write(transferStreamId(transferId), [new TargetCredited({ transferId }), new TransferCompleted({ transferId })]);

    // the upgraded application runs its process manager (and whatever else it does at start) over that log
    const app = await startTestApp({ PROJECTION_POLL_INTERVAL_MS: '100' }, database);
    try {
      await waitUntilSettled(app.dataSource);
      const close = await app.http.post(`/accounts/${source}/close`);
      expect({ status: close.status, code: close.body.code }).toEqual({ status: 200, code: undefined });
    } finally {
      await app.close();
    }
  });
});

describe('the process manager replayed from the start of the log', () => {
  let t: TestApp;
  let ledger: LedgerClient;
  beforeAll(async () => {
    t = await startTestApp({ PROJECTION_POLL_INTERVAL_MS: '100' });
    ledger = new LedgerClient(t);
  });
  afterAll(() => t.close());

  it('moves no money again: every transfer is decided from its own stream, every leg is idempotent', async () => {
    const rich = await ledger.openWith(10_000);
    const poor = await ledger.openWith(10);
    const target = await ledger.open();
    const closed = await ledger.openClosed();
    const dollars = await ledger.open('Yankee', 'USD');
    const transfers = [
      await ledger.transfer(rich.id, target.id, 1_000), // completed
      await ledger.transfer(poor.id, target.id, 500), // failed: insufficient funds
      await ledger.transfer(rich.id, closed.id, 700), // failed: refunded (closed)
      await ledger.transfer(rich.id, dollars.id, 300), // failed: refunded (currency)
    ];
    // The last one spends what the first credited, so it is asked for once that has settled:
    // transfers in flight at once are decided in any order (different segments, or lanes of one).
    await ledger.settled(transfers[0].id);
    transfers.push(await ledger.transfer(target.id, rich.id, 400)); // completed
    const outcomes = [];
    for (const transfer of transfers) outcomes.push(await ledger.settled(transfer.id));
    expect(outcomes.map((outcome) => [outcome.status, outcome.failureCode, outcome.refunded])).toEqual([
      ['completed', null, false],
      ['failed', 'ACCOUNT_INSUFFICIENT_FUNDS', false],
      ['failed', 'ACCOUNT_CLOSED', true],
      ['failed', 'ACCOUNT_CURRENCY_MISMATCH', true],
      ['completed', null, false],
    ]);
    // Since then, conditions changed: if any step were taken again, it would now go differently.
    await ledger.withdraw(target.id, 600);
    await ledger.close(target.id);
    await ledger.deposit(poor.id, 10_000);
    await waitUntilSettled(t.dataSource);
    const before = await foldLedger(t.dataSource);

    await t.dataSource.query(`UPDATE projection_checkpoints SET transaction_id = '0', position = 0 WHERE name = 'transfer-process'`);
    const wake = await ledger.deposit(rich.id, 1); // an append wakes the runners up
    const [head] = await rowsOf<{ position: string }>(t.dataSource, 'SELECT max(position) AS position FROM events');
    await until('the process manager to replay the whole log', async () => {
      const [row] = await rowsOf<{ position: string }>(
        t.dataSource,
        `SELECT position FROM projection_checkpoints WHERE name = 'transfer-process'`,
      );
      return Number(row.position) >= Number(head.position) ? true : undefined;
    });
    await waitUntilSettled(t.dataSource);

    const after = await foldLedger(t.dataSource);
    const added = after.events.slice(before.events.length);
    expect(added.map((event) => ({ type: event.type, position: event.position }))).toEqual([
      { type: 'accounts.MoneyDeposited', position: wake.body.position },
    ]);
    expect(after.violations).toEqual([]);
    for (const transfer of transfers) expect(after.transfers.get(transfer.id)).toEqual(before.transfers.get(transfer.id));
    expect(await readTables(t.dataSource)).toEqual(foldAsTables(after));
    // one settlement per completed transfer, on its source; none for the failed ones; none added by the replay
    const settledIds = after.settlements.map((settlement) => settlement.transferId);
    expect(settledIds.sort()).toEqual([transfers[0].id, transfers[4].id].sort());
    expect(after.settlements).toEqual(before.settlements);
    expect([...after.inFlight.values()].every((amount) => amount === 0)).toBe(true);
  });
});

describe('money in flight: a transfer held right after the debit of its source', () => {
  let t: TestApp;
  let ledger: LedgerClient;
  beforeAll(async () => {
    t = await startTestApp({ PROJECTION_POLL_INTERVAL_MS: '100' });
    await installStepHold(t.database.url, ['accounts.TransferCredited', 'transfers.CreditRefused']);
    ledger = new LedgerClient(t);
  });
  afterAll(() => t.close());

  /**
   * Requests a transfer and holds the process right after the debit of the source and its record
   * (one unit of work, committed), at the next step: the credit of the target, or the record of its
   * refusal (installStepHold). `during` runs while the money is in flight (debited, neither settled
   * nor refunded); the process then finishes and its outcome is returned.
   */
  async function heldAfterDebit<T>(
    sourceId: string,
    targetId: string,
    amount: number,
    during: (transferId: string) => Promise<T>,
  ): Promise<{ transfer: Record<string, any>; during: T }> {
    const hold = new pg.Client({ connectionString: t.database.url });
    await hold.connect();
    try {
      await hold.query('SELECT pg_advisory_lock($1)', [HOLD_LOCK]);
      const accepted = await ledger.transfer(sourceId, targetId, amount);
      await until('the debit of the source and its record, and the next step waiting', async () =>
        (await streamTypes(t.dataSource, transferStreamId(accepted.id))).includes('transfers.SourceDebited') &&
        (await t.dataSource.query(waitingOnHold)).length > 0
          ? true
          : undefined,
      );
      const result = await during(accepted.id);
      // still held: nothing happened to the transfer meanwhile
      expect(await legCounts(t.dataSource, accepted.id)).toEqual({ 'accounts.TransferDebited': 1 });
      expect(await streamTypes(t.dataSource, transferStreamId(accepted.id))).toEqual([
        'transfers.TransferRequested',
        'transfers.SourceDebited',
      ]);
      await hold.query('SELECT pg_advisory_unlock($1)', [HOLD_LOCK]);
      return { transfer: await ledger.settled(accepted.id), during: result };
    } finally {
      await hold.end();
    }
  }

  // Regression (src/accounts/account.ts closeAccount + refundTransfer): the source could be closed once
  // a transfer had debited it to zero, while that transfer was still in flight. If the credit was then
  // refused, the refund landed in the closed account: a closed account holding money that no command
  // could ever move again (withdrawals, transfers and a second close all answer ACCOUNT_CLOSED).
  // Closing now waits for the money in flight.
  it('never strands money: the close is refused while a transfer from the account is in flight, and the refund can be paid out', async () => {
    const source = await ledger.openWith(300);
    const target = await ledger.openClosed(); // the credit will be refused
    const { transfer, during: close } = await heldAfterDebit(source.id, target.id, 300, async () => {
      // the source now holds 0, its 300 are in flight: its owner tries to close it
      const response = await t.http.post(`/accounts/${source.id}/close`);
      return {
        status: response.status,
        code: response.body.code,
        details: response.body.details ?? null,
        events: await ledger.history(source.id),
      };
    });
    expect({ status: close.status, code: close.code }).toEqual({ status: 422, code: 'ACCOUNT_TRANSFER_IN_FLIGHT' });
    expect(close.events.map((event) => event.type)).not.toContain('accounts.AccountClosed'); // the refusal wrote nothing
    expect(transfer).toEqual(expect.objectContaining({ status: 'failed', failureCode: 'ACCOUNT_CLOSED', refunded: true }));
    const account = await ledger.account(source.id);
    expect({ balance: account.balance, status: account.status }).toEqual({ balance: 300, status: 'open' }); // the refund came back
    expect(await ledger.legs(source.id, transfer.id)).toEqual(['accounts.TransferDebited', 'accounts.TransferRefunded']); // never settled
    // nothing in flight any more: paid out, the account closes
    await ledger.withdraw(source.id, 300);
    await ledger.close(source.id);
    await expectConsistentLedger(t.dataSource);
  });

  it('a close refused while in flight is allowed once the transfer has settled', async () => {
    const source = await ledger.openWith(250);
    const target = await ledger.open();
    const { transfer, during: close } = await heldAfterDebit(source.id, target.id, 250, async () => {
      const response = await t.http.post(`/accounts/${source.id}/close`);
      return { status: response.status, code: response.body.code };
    });
    expect(close).toEqual({ status: 422, code: 'ACCOUNT_TRANSFER_IN_FLIGHT' });
    expect(transfer.status).toBe('completed');
    expect(await ledger.legs(source.id, transfer.id)).toEqual(['accounts.TransferDebited', 'accounts.TransferSettled']);
    await ledger.close(source.id); // the balance is 0 and nothing is in flight
    expect((await ledger.account(source.id)).status).toBe('closed');
    expect((await ledger.account(target.id)).balance).toBe(250);
    await expectConsistentLedger(t.dataSource);
  });

  // Regression (src/accounts/account.ts refundTransfer): a refund may not be refused, and it used to be
  // computable past 2^53 - 1 (deposits up to the limit while a debit was in flight, then the refund).
  // Deposits now keep room for the money in flight, so the deposit that would make it so is refused.
  it('refuses the deposit that would take a refund past 2^53 - 1; the refund then lands at most at 2^53 - 1', async () => {
    const source = await ledger.openWith(1000);
    const target = await ledger.openClosed(); // the credit will be refused: the 1000 come back
    const { transfer, during } = await heldAfterDebit(source.id, target.id, 1000, async () => {
      const tooMuch = await t.http.post(`/accounts/${source.id}/deposits`).send({ amount: Number.MAX_SAFE_INTEGER - 999 });
      const justRight = await t.http.post(`/accounts/${source.id}/deposits`).send({ amount: Number.MAX_SAFE_INTEGER - 1000 });
      const oneMore = await t.http.post(`/accounts/${source.id}/deposits`).send({ amount: 1 });
      return { tooMuch: [tooMuch.status, tooMuch.body.code], justRight: justRight.status, oneMore: [oneMore.status, oneMore.body.code] };
    });
    expect(during).toEqual({
      tooMuch: [422, 'ACCOUNT_BALANCE_LIMIT_EXCEEDED'],
      justRight: 200,
      oneMore: [422, 'ACCOUNT_BALANCE_LIMIT_EXCEEDED'],
    });
    expect(transfer).toEqual(expect.objectContaining({ status: 'failed', failureCode: 'ACCOUNT_CLOSED', refunded: true }));
    const history = await ledger.history(source.id);
    const refund = history.find((event) => event.type === 'accounts.TransferRefunded')!;
    expect(refund.data.balanceAfter).toBe(Number.MAX_SAFE_INTEGER);
    expect((await ledger.account(source.id)).balance).toBe(Number.MAX_SAFE_INTEGER); // the read side reads it back exactly
    await expectConsistentLedger(t.dataSource);
  });
});

describe('read models while the process manager is inside a step', () => {
  let t: TestApp;
  let ledger: LedgerClient;
  beforeAll(async () => {
    // a snapshot every 2 account events: the step below writes one, which the test can hold up.
    // READ_YOUR_WRITES_TIMEOUT_MS stays test-app.ts's 15 s: a transaction of another test file holds
    // the (server-wide) horizon back for a moment, and 1 s failed the read then; the step the test
    // holds lasts until after the read, so a step that held the horizon would still answer 503.
    t = await startTestApp({ SNAPSHOT_INTERVALS: 'account:2', PROJECTION_POLL_INTERVAL_MS: '100' });
    ledger = new LedgerClient(t);
  });
  afterAll(() => t.close());

  // Regression (src/event-sourcing/projection-apply-batch.ts commit(), running the process manager): the
  // process manager used to take its account steps inside the projection batch transaction, which
  // holds a transaction id (its checkpoint row is locked FOR UPDATE) for as long as the steps take.
  // Every async projection reads only below pg_snapshot_xmin, so while the manager worked — a slow
  // step, or simply a backlog of transfers in one batch of up to 500 — no read model could show
  // anything committed after the batch began, even a deposit on an unrelated account: queries with
  // minPosition answered 503 PROJECTION_NOT_CAUGHT_UP. (Measured without any lock: 150 queued
  // transfers kept an unrelated deposit invisible past READ_YOUR_WRITES_TIMEOUT_MS.) A projection
  // without tables now runs its steps outside the checkpoint transaction. Here a step is held up
  // deterministically: the test locks the snapshots table (SHARE mode, no transaction id of its own),
  // so the snapshot the debit writes waits; the debit itself is committed.
  it('an unrelated deposit is readable (minPosition) while the process manager waits inside a step', async () => {
    const source = await ledger.openWith(600); // versions 1, 2 (a snapshot at 2)
    await ledger.deposit(source.id, 400); // version 3
    const target = await ledger.open();
    const other = await ledger.openWith(10); // versions 1, 2 (a snapshot at 2)
    await waitUntilSettled(t.dataSource);
    const lock = new pg.Client({ connectionString: t.database.url });
    await lock.connect();
    let read: { status: number; code?: string };
    let accepted: { id: string };
    try {
      await lock.query('BEGIN');
      await lock.query('LOCK TABLE snapshots IN SHARE MODE'); // blocks snapshot writes, not reads
      const [{ xid }] = (await lock.query('SELECT pg_current_xact_id_if_assigned()::text AS xid')).rows;
      expect(xid).toBeNull(); // the test itself holds nothing back
      accepted = await ledger.transfer(source.id, target.id, 100); // its debit takes the source to version 4: a snapshot
      await until('the debit, committed, and the manager waiting on its snapshot', async () => {
        if (!(await legCounts(t.dataSource, accepted.id))['accounts.TransferDebited']) return undefined;
        const waiting = await t.dataSource.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO snapshots%'`,
        );
        return waiting.length > 0 ? true : undefined;
      });
      const deposit = await ledger.deposit(other.id, 5); // version 3: no snapshot, nothing to wait for
      const response = await t.http.get(`/accounts/${other.id}`).query({ minPosition: deposit.body.position });
      read = { status: response.status, code: response.body.code };
    } finally {
      await lock.query('ROLLBACK');
      await lock.end();
    }
    expect((await ledger.settled(accepted!.id)).status).toBe('completed');
    expect(read!).toEqual({ status: 200, code: undefined });
    expect(await ledger.legs(source.id, accepted!.id)).toEqual(['accounts.TransferDebited', 'accounts.TransferSettled']);
    await expectConsistentLedger(t.dataSource);
  });
});
