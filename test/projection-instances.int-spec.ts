import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../src/database/data-source-options.js';
import { runMigrations } from '../src/database/run-migrations.js';
import { ProjectionEngine } from '../src/event-sourcing/index.js';
import { type AppProcess, call, startAppProcess } from './support/app-process.js';
import { readSummaries, readTransactions, replayLedger } from './support/ledger-replay.js';
import {
  checkpointRow,
  eventually,
  rows,
  seededRandom,
  untilNothingHeldBack,
  waitUntilApplied,
  waitUntilCaughtUp,
} from './support/projection-fixtures.js';
import { type TestApp, startTestApp } from './support/test-app.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const PROJECTIONS = ['account-summary', 'account-transactions'] as const;

/** The process id inside an engine's owner id (`host:pid:random`). */
const pidOf = (owner: string | null | undefined) => (owner ? Number(owner.split(':').at(-2)) : undefined);

/**
 * Every COMMITTED application of an event to the account tables, logged by BEFORE INSERT triggers
 * in the runner's own transaction (they fire even when ON CONFLICT DO NOTHING then ignores the row):
 * an event applied twice shows twice, an event of a rolled-back batch does not show.
 */
async function installApplyLog(url: string): Promise<void> {
  const dataSource = await new DataSource(dataSourceOptions(url, 2)).initialize();
  try {
    await runMigrations(dataSource);
    await dataSource.query(`CREATE TABLE apply_log (projection text NOT NULL, key text NOT NULL)`);
    await dataSource.query(`
      CREATE FUNCTION log_transaction_apply() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO apply_log VALUES ('account-transactions', NEW.position::text); RETURN NEW; END $$`);
    await dataSource.query(`
      CREATE FUNCTION log_summary_apply() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO apply_log VALUES ('account-summary', NEW.id::text); RETURN NEW; END $$`);
    await dataSource.query(
      `CREATE TRIGGER log_apply BEFORE INSERT ON account_transactions FOR EACH ROW EXECUTE FUNCTION log_transaction_apply()`,
    );
    await dataSource.query(`CREATE TRIGGER log_apply BEFORE INSERT ON account_summaries FOR EACH ROW EXECUTE FUNCTION log_summary_apply()`);
  } finally {
    await dataSource.destroy();
  }
}

/** Each movement logged once by account-transactions, each account once by account-summary. */
async function expectAppliedOnce(client: pg.Pool): Promise<void> {
  const replay = await replayLedger(client);
  const logged = async (projection: string) =>
    (await rows<{ key: string }>(client, 'SELECT key FROM apply_log WHERE projection = $1', [projection])).map((row) => row.key).sort();
  expect(await logged('account-transactions')).toEqual(replay.transactions.map((row) => String(row.position)).sort());
  expect(await logged('account-summary')).toEqual(replay.summaries.map((row) => row.id).sort());
  expect(await readSummaries(client)).toEqual(replay.summaries);
  expect(await readTransactions(client)).toEqual(replay.transactions);
}

// =============================================================================================
// 5. Two service processes (dist/src/main.js) on one database.

describe('two service processes on one database', () => {
  const LEASE_TTL_MS = 1_000;
  let database: TestDatabase;
  let client: pg.Pool;
  const processes: AppProcess[] = [];
  const accounts: Array<{ id: string; balance: number }> = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    await installApplyLog(database.url);
    client = new pg.Pool({ connectionString: database.url, max: 4 });
    const env = {
      // One segment: these suites check one leader per projection (segments over instances:
      // test/projection-segments.int-spec.ts).
      PROJECTION_SEGMENTS: '1',
      PROJECTION_LEASE_TTL_MS: String(LEASE_TTL_MS),
      PROJECTION_POLL_INTERVAL_MS: '100',
      PROJECTION_BATCH_SIZE: '10',
      READ_YOUR_WRITES_TIMEOUT_MS: '15000',
    };
    processes.push(...(await Promise.all([startAppProcess(database.url, env), startAppProcess(database.url, env)])));
  });
  afterAll(async () => {
    for (const process of processes) await process.kill();
    await client?.end();
    await database?.drop();
  });

  const leases = async () =>
    Promise.all(
      PROJECTIONS.map(async (name) => ({
        name,
        ...(
          await rows<{ owner: string | null; live: boolean }>(
            client,
            'SELECT lease_owner AS owner, lease_expires_at > clock_timestamp() AS live FROM projection_checkpoints WHERE name = $1',
            [name],
          )
        )[0],
      })),
    );

  it('each projection is run by exactly one of them, and every event is applied exactly once', async () => {
    const [a, b] = processes;
    const pids = [a.pid, b.pid];
    await eventually('both projections to have a live lease', async () =>
      (await leases()).every((lease) => lease.owner && lease.live) ? true : undefined,
    );

    // Commands through both processes, concurrently, while the lease rows are sampled.
    let sampling = true;
    const owners = new Map<string, Set<string>>(PROJECTIONS.map((name) => [name, new Set()]));
    const sampler = (async () => {
      while (sampling) {
        for (const lease of await leases()) if (lease.owner) owners.get(lease.name)!.add(lease.owner);
        await sleep(20);
      }
    })();
    const random = seededRandom(5);
    for (let index = 0; index < 10; index++) {
      const opened = await call(processes[index % 2].url, 'POST', '/accounts', { ownerName: `Twin ${index}`, currency: 'EUR' });
      expect(opened.status).toBe(201);
      accounts.push({ id: opened.body.id, balance: 0 });
    }
    for (let round = 0; round < 6; round++) {
      await Promise.all(
        accounts.map(async (account, index) => {
          const amount = 1 + Math.floor(random() * 100);
          const response = await call(processes[(index + round) % 2].url, 'POST', `/accounts/${account.id}/deposits`, { amount });
          expect({ status: response.status, body: response.body }).toMatchObject({ status: 200 }); // the body says why not
          account.balance += amount;
        }),
      );
    }
    await waitUntilCaughtUp(client, PROJECTIONS);
    sampling = false;
    await sampler;

    for (const name of PROJECTIONS) {
      expect(owners.get(name)!.size).toBe(1); // one runner all along, no flapping
      expect(pids).toContain(pidOf([...owners.get(name)!][0]));
    }
    await expectAppliedOnce(client);
  });

  it('SIGKILL of the holder: the other takes over only after the lease expires, and applies new events once', async () => {
    const holder = (await checkpointRow(client, 'account-summary'))!;
    const victim = processes.find((process) => process.pid === pidOf(holder.leaseOwner))!;
    const survivor = processes.find((process) => process !== victim)!;
    expect(victim).toBeDefined();

    await victim.kill();
    const dead = (await checkpointRow(client, 'account-summary'))!;
    expect(dead.leaseOwner).toBe(holder.leaseOwner);
    const [{ expiry: deadExpiry }] = await rows<{ expiry: string }>(
      client,
      `SELECT lease_expires_at::text AS expiry FROM projection_checkpoints WHERE name = 'account-summary'`,
    );

    // Writes go on through the survivor.
    const positions: number[] = [];
    for (const account of accounts) {
      const response = await call(survivor.url, 'POST', `/accounts/${account.id}/deposits`, { amount: 5 });
      expect({ status: response.status, body: response.body }).toMatchObject({ status: 200 });
      account.balance += 5;
      positions.push(response.body.position);
    }

    // Nobody takes the lease before it expires; then the survivor does.
    const early: string[] = [];
    const taken = await eventually(
      'the survivor to take the account-summary lease',
      async () => {
        const [sample] = await rows<{ owner: string | null; before_expiry: boolean }>(
          client,
          `SELECT lease_owner AS owner, clock_timestamp() < $1::timestamptz AS before_expiry FROM projection_checkpoints WHERE name = 'account-summary'`,
          [deadExpiry],
        );
        if (sample.before_expiry && sample.owner !== dead.leaseOwner) early.push(String(sample.owner));
        return sample.owner !== dead.leaseOwner ? sample.owner : undefined;
      },
      20_000,
      10,
    );
    expect(early).toEqual([]);
    expect(pidOf(taken)).toBe(survivor.pid);

    // Read-your-writes through the survivor, which now runs the projections.
    const last = accounts[accounts.length - 1];
    const read = await call(survivor.url, 'GET', `/accounts/${last.id}?minPosition=${positions[positions.length - 1]}`);
    expect(read.status).toBe(200);
    expect(read.body.balance).toBe(last.balance);

    await waitUntilCaughtUp(client, PROJECTIONS);
    for (const name of PROJECTIONS) expect(pidOf((await checkpointRow(client, name))!.leaseOwner)).toBe(survivor.pid);
    for (const account of accounts) {
      const [row] = await rows<{ balance: string }>(client, 'SELECT balance FROM account_summaries WHERE id = $1', [account.id]);
      expect(Number(row.balance)).toBe(account.balance);
    }
    await expectAppliedOnce(client);
  });
});

// ---------------------------------------------------------------------------------------------
// 5b. Two instances in this process (the app exactly as main.ts builds it), one database.

describe('two application instances in one process on one database', () => {
  let database: TestDatabase;
  let first: TestApp;
  let second: TestApp;
  const closed = new Set<TestApp>();
  const ids: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    // A long TTL: a hand-over within it can only come from the leader releasing its lease.
    const env = { PROJECTION_SEGMENTS: '1', PROJECTION_LEASE_TTL_MS: '60000', PROJECTION_POLL_INTERVAL_MS: '100' };
    first = await startTestApp(env, database);
    second = await startTestApp(env, database);
  });
  afterAll(async () => {
    for (const app of [first, second]) if (app && !closed.has(app)) await app.close();
    await database?.drop();
  });

  const engines = () => [first, second].map((app) => app.app.get(ProjectionEngine));
  const leaders = () => PROJECTIONS.map((name) => engines().filter((engine) => engine.isLeader(name)).length);

  it('exactly one of them leads each projection, and together they keep the read tables equal to a replay', async () => {
    await eventually('a leader for each projection', async () => (leaders().every((count) => count === 1) ? true : undefined));
    for (const [index, app] of [first, second, first, second].entries()) {
      const opened = await app.http.post('/accounts').send({ ownerName: `Pair ${index}`, currency: 'EUR' });
      expect(opened.status).toBe(201);
      ids.push(opened.body.id);
      expect((await app.http.post(`/accounts/${opened.body.id}/deposits`).send({ amount: 10 * (index + 1) })).status).toBe(200);
    }
    for (let sample = 0; sample < 20; sample++) {
      expect(leaders()).toEqual([1, 1]);
      await sleep(10);
    }
    await waitUntilCaughtUp(first.dataSource, PROJECTIONS);
    const replay = await replayLedger(first.dataSource);
    expect(await readSummaries(first.dataSource)).toEqual(replay.summaries);
    expect(await readTransactions(first.dataSource)).toEqual(replay.transactions);
  });

  // Regression (projection-engine.ts): the runners used to stop in onApplicationShutdown, after
  // TypeORM had destroyed the DataSource, so a graceful shutdown kept its leases for a whole TTL.
  it('closing the leader gracefully releases its lease at once, and the other instance carries on', async () => {
    await eventually('a leader for each projection', async () => (leaders().every((count) => count === 1) ? true : undefined));
    const [leaderApp, otherApp] = engines()[0].isLeader('account-summary') ? [first, second] : [second, first];
    const leader = leaderApp.app.get(ProjectionEngine);
    const other = otherApp.app.get(ProjectionEngine);
    closed.add(leaderApp);
    await leaderApp.close();
    const row = await checkpointRow(otherApp.dataSource, 'account-summary');
    expect(row?.leaseOwner).not.toBe(leader.owner);

    // Within a fraction of the 60 s TTL: only a released lease allows that.
    await eventually(
      'the other instance to lead both projections',
      async () => (PROJECTIONS.every((name) => other.isLeader(name)) ? true : undefined),
      10_000,
    );
    const deposit = await otherApp.http.post(`/accounts/${ids[0]}/deposits`).send({ amount: 1 });
    expect(deposit.status).toBe(200);
    const read = await otherApp.http.get(`/accounts/${ids[0]}`).query({ minPosition: deposit.body.position });
    expect(read.status).toBe(200);
    expect(read.body.balance).toBe(11);
  });
});

// =============================================================================================
// 6. Read-your-writes with minPosition.

describe('minPosition (read-your-writes)', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp({ READ_YOUR_WRITES_TIMEOUT_MS: '15000' });
  });
  afterAll(() => app?.close());

  it('waits until the projection has applied the write, then reflects it', async () => {
    const open = await app.http.post('/accounts').send({ ownerName: 'Reader', currency: 'EUR' });
    expect(open.status).toBe(201);
    const id = open.body.id as string;
    const opened = await app.http.get(`/accounts/${id}`).query({ minPosition: open.body.position });
    expect(opened.status).toBe(200);
    expect(opened.body).toMatchObject({ id, balance: 0, version: 1 });
    expect(Number(opened.headers['x-projection-position'])).toBeGreaterThanOrEqual(open.body.position);

    const deposit = await app.http.post(`/accounts/${id}/deposits`).send({ amount: 250 });
    const byHeader = await app.http.get(`/accounts/${id}`).set('X-Min-Position', String(deposit.body.position));
    expect(byHeader.status).toBe(200);
    expect(byHeader.body).toMatchObject({ balance: 250, version: 2 });
    expect(byHeader.headers.etag).toBe('"2"');
    const movements = await app.http.get(`/accounts/${id}/transactions`).query({ minPosition: deposit.body.position });
    expect(movements.status).toBe(200);
    expect(movements.body.items.map((item: { amount: number }) => item.amount)).toEqual([250]);
    const list = await app.http.get('/accounts').query({ owner: 'Reader', minPosition: deposit.body.position });
    expect(list.body.items).toEqual([expect.objectContaining({ id, balance: 250 })]);

    // Hold the runner's write to account_summaries back: the query must wait, not answer stale data.
    const lock = new pg.Client({ connectionString: app.database.url });
    await lock.connect();
    try {
      await lock.query('BEGIN');
      await lock.query('LOCK TABLE account_summaries IN SHARE MODE');
      const withdrawal = await app.http.post(`/accounts/${id}/withdrawals`).send({ amount: 40 });
      expect(withdrawal.status).toBe(200);
      let answered = false;
      const pending = app.http
        .get(`/accounts/${id}`)
        .query({ minPosition: withdrawal.body.position })
        .then((response) => {
          answered = true;
          return response;
        });
      await waitUntilApplied(app.dataSource, 'account-transactions', withdrawal.body.position); // the other projection is not held
      await sleep(200);
      expect(answered).toBe(false);
      await lock.query('COMMIT');
      const read = await pending;
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({ balance: 210, version: 3 });
      expect(Number(read.headers['x-projection-position'])).toBeGreaterThanOrEqual(withdrawal.body.position);
    } finally {
      await lock.end();
    }

    const invalid = await app.http.get(`/accounts/${id}`).query({ minPosition: 'abc' });
    expect(invalid.status).toBe(400);
    expect(invalid.body.code).toBe('INVALID_MIN_POSITION');
  });
});

describe('minPosition when no runner applies the projection', () => {
  const TIMEOUT_MS = 2_500;
  let database: TestDatabase;
  let reader: TestApp;
  let runner: TestApp | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
    reader = await startTestApp({ PROJECTIONS_ENABLED: 'false', READ_YOUR_WRITES_TIMEOUT_MS: String(TIMEOUT_MS) }, database);
  });
  afterAll(async () => {
    await runner?.close();
    await reader?.close();
    await database?.drop();
  });

  const expectNotCaughtUp = (response: { status: number; headers: Record<string, string>; body: any }, minPosition: number) => {
    expect(response.status).toBe(503);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.headers['retry-after']).toBe('1');
    expect(response.body).toMatchObject({ status: 503, code: 'PROJECTION_NOT_CAUGHT_UP', projection: 'account-summary', minPosition });
    expect(response.body.position).toBeLessThan(minPosition);
  };

  it('disabled: 503 with Retry-After; another instance with a runner: 200; that runner stopped: 503 again', async () => {
    const open = await reader.http.post('/accounts').send({ ownerName: 'Nobody runs me', currency: 'EUR' });
    expect(open.status).toBe(201);
    const id = open.body.id as string;
    expectNotCaughtUp(await reader.http.get(`/accounts/${id}`).query({ minPosition: open.body.position }), open.body.position);
    expect((await reader.http.get(`/accounts/${id}`)).status).toBe(404); // really not projected
    const status = await reader.http.get('/admin/projections/account-summary');
    expect(status.body).toMatchObject({ runner: null, lagEvents: 1 });

    // Another instance on the same database runs the projections: the same query now succeeds.
    runner = await startTestApp({}, database);
    // Within TIMEOUT_MS of when commit-safe readers can see the opening: a transaction of another test
    // file (the horizon is server-wide) may hold it back longer than that.
    await untilNothingHeldBack(reader.dataSource);
    const served = await reader.http.get(`/accounts/${id}`).query({ minPosition: open.body.position });
    expect(served.status).toBe(200);
    expect(served.body).toMatchObject({ id, balance: 0 });

    // That instance stops: its runner with it.
    await runner.close();
    runner = undefined;
    const deposit = await reader.http.post(`/accounts/${id}/deposits`).send({ amount: 30 });
    expect(deposit.status).toBe(200);
    expectNotCaughtUp(await reader.http.get(`/accounts/${id}`).query({ minPosition: deposit.body.position }), deposit.body.position);
    const stale = await reader.http.get(`/accounts/${id}`);
    expect(stale.status).toBe(200);
    expect(stale.body.balance).toBe(0);
  });
});
