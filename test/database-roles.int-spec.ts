import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { type TestApp, startTestApp } from './support/test-app.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

/**
 * Least privilege in PostgreSQL: the migrations' three group roles, each given to a login user of
 * its own, can do what their side needs and nothing else; and the service runs with one such user
 * per side (COMMAND_/QUERY_/PROJECTOR_DATABASE_URL), migrations applied as the owner.
 */

type Side = 'command' | 'query' | 'projector';
const SIDES: readonly Side[] = ['command', 'query', 'projector'];
const PASSWORD = 'role-test-password';

let database: TestDatabase;
let owner: pg.Client;
const users = {} as Record<Side, string>;
const clients = {} as Record<Side, pg.Client>;

function urlAs(user: string): string {
  const url = new URL(database.url);
  url.username = user;
  url.password = PASSWORD;
  return url.toString();
}

/** Runs `statement` as `side` in a transaction that is always rolled back; the error code, or 'ok'. */
async function attempt(side: Side, statement: string, values: unknown[] = []): Promise<string> {
  const client = clients[side];
  await client.query('BEGIN');
  try {
    await client.query(statement, values);
    return 'ok';
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  } finally {
    await client.query('ROLLBACK');
  }
}

const DENIED = '42501'; // insufficient_privilege

const insertEvent = `INSERT INTO events (stream_id, version, type, event_id, data, metadata) VALUES ($1, 1, 'test.Thing', $2, '{}', '{}')`;
const eventValues = () => [`role-test-${randomUUID()}`, randomUUID()];
const insertSummary = `INSERT INTO account_summaries (id, owner_name, currency, balance, status, version, opened_at, updated_at, opened_position, last_position)
  VALUES ($1, 'x', 'EUR', 0, 'open', 1, now(), now(), 1, 1)`;

beforeAll(async () => {
  database = await createTestDatabase();
  // Migrations as the owner (the test server's superuser), as the service does at start.
  const migrated = await startTestApp({ PROJECTIONS_ENABLED: 'false' }, database);
  await migrated.app.close();
  owner = new pg.Client({ connectionString: database.url });
  await owner.connect();
  const suffix = randomBytes(4).toString('hex');
  for (const side of SIDES) {
    users[side] = `ledger_test_${side}_${suffix}`;
    await owner.query(`CREATE ROLE ${users[side]} LOGIN PASSWORD '${PASSWORD}' IN ROLE ledger_${side}`);
    clients[side] = new pg.Client({ connectionString: urlAs(users[side]) });
    await clients[side].connect();
  }
});

afterAll(async () => {
  await Promise.all(SIDES.map((side) => clients[side]?.end()));
  await owner?.end();
  await database?.drop();
  // Roles are cluster-wide: drop the test's users (nothing of theirs is left once the database is gone).
  const server = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  await server.connect();
  for (const side of SIDES) if (users[side]) await server.query(`DROP ROLE IF EXISTS ${users[side]}`);
  await server.end();
});

describe('the roles the migrations create', () => {
  it('are group roles nobody can log in as', async () => {
    const { rows } = await owner.query(`SELECT rolname, rolcanlogin, rolsuper FROM pg_roles WHERE rolname LIKE 'ledger\\_%' AND rolname NOT LIKE 'ledger\\_test\\_%' ORDER BY rolname`);
    expect(rows).toEqual([
      { rolname: 'ledger_command', rolcanlogin: false, rolsuper: false },
      { rolname: 'ledger_projector', rolcanlogin: false, rolsuper: false },
      { rolname: 'ledger_query', rolcanlogin: false, rolsuper: false },
    ]);
  });
});

describe('ledger_command', () => {
  it('appends and reads events, and writes idempotency keys and snapshots', async () => {
    expect(await attempt('command', insertEvent, eventValues())).toBe('ok');
    expect(await attempt('command', 'SELECT count(*) FROM events')).toBe('ok');
    expect(await attempt('command', `INSERT INTO idempotency_keys (key, fingerprint, status_code, headers, expires_at) VALUES ('k', 'f', 200, '{}', now())`)).toBe('ok');
    expect(await attempt('command', 'DELETE FROM idempotency_keys WHERE expires_at < now()')).toBe('ok');
    expect(await attempt('command', 'SELECT * FROM snapshots')).toBe('ok');
  });

  it('may never change or remove an event, nor touch read tables, checkpoints or the schema', async () => {
    expect(await attempt('command', `UPDATE events SET type = 'x'`)).toBe(DENIED);
    expect(await attempt('command', 'DELETE FROM events')).toBe(DENIED);
    expect(await attempt('command', 'TRUNCATE events')).toBe(DENIED);
    expect(await attempt('command', insertSummary, [randomUUID()])).toBe(DENIED);
    expect(await attempt('command', 'SELECT * FROM account_summaries')).toBe(DENIED);
    expect(await attempt('command', `UPDATE projection_checkpoints SET position = 0`)).toBe(DENIED);
    expect(await attempt('command', 'CREATE TABLE sneaky (id int)')).toBe(DENIED);
    expect(await attempt('command', 'DROP TABLE events')).toBe(DENIED);
  });
});

describe('ledger_query', () => {
  // Snapshots too: time travel runs on the query side and starts from them. A snapshot is a fold of
  // events this role may read in full anyway, so reading it discloses nothing more.
  it('reads the read tables, the event log, the checkpoints and the snapshots', async () => {
    for (const table of ['account_summaries', 'account_transactions', 'transfers', 'events', 'projection_checkpoints', 'projection_skips', 'snapshots']) {
      expect({ table, result: await attempt('query', `SELECT * FROM ${table} LIMIT 1`) }).toEqual({ table, result: 'ok' });
    }
  });

  it('writes nothing at all, and reads nothing of the command side but its snapshots', async () => {
    expect(await attempt('query', insertEvent, eventValues())).toBe(DENIED);
    expect(await attempt('query', insertSummary, [randomUUID()])).toBe(DENIED);
    expect(await attempt('query', `UPDATE account_summaries SET balance = 1`)).toBe(DENIED);
    expect(await attempt('query', 'DELETE FROM transfers')).toBe(DENIED);
    expect(await attempt('query', `UPDATE projection_checkpoints SET position = 0`)).toBe(DENIED);
    expect(await attempt('query', 'SELECT * FROM idempotency_keys')).toBe(DENIED);
    expect(await attempt('query', `INSERT INTO snapshots (stream_id, aggregate, schema_version, version, position, state) VALUES ('s', 'account', 1, 1, 1, '{}')`)).toBe(DENIED);
    expect(await attempt('query', 'UPDATE snapshots SET state = state')).toBe(DENIED);
    expect(await attempt('query', 'DELETE FROM snapshots')).toBe(DENIED);
    expect(await attempt('query', 'CREATE TABLE sneaky (id int)')).toBe(DENIED);
  });
});

describe('ledger_projector', () => {
  it('reads events, writes read tables and checkpoints, and may create a rebuild schema', async () => {
    expect(await attempt('projector', 'SELECT * FROM events LIMIT 1')).toBe('ok');
    expect(await attempt('projector', insertSummary, [randomUUID()])).toBe('ok');
    expect(await attempt('projector', `UPDATE account_summaries SET balance = 1`)).toBe('ok');
    expect(await attempt('projector', 'DELETE FROM account_transactions')).toBe('ok');
    expect(await attempt('projector', `UPDATE projection_checkpoints SET position = position`)).toBe('ok');
    expect(await attempt('projector', 'CREATE SCHEMA rebuild_role_test')).toBe('ok');
  });

  it('may not append, change or remove events, nor touch the command side’s tables', async () => {
    expect(await attempt('projector', insertEvent, eventValues())).toBe(DENIED);
    expect(await attempt('projector', `UPDATE events SET type = 'x'`)).toBe(DENIED);
    expect(await attempt('projector', 'DELETE FROM events')).toBe(DENIED);
    expect(await attempt('projector', 'SELECT * FROM idempotency_keys')).toBe(DENIED);
    expect(await attempt('projector', 'SELECT * FROM snapshots')).toBe(DENIED);
    expect(await attempt('projector', 'CREATE TABLE sneaky (id int)')).toBe(DENIED);
  });
});

describe('the service with one least-privilege user per side', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp(
      {
        COMMAND_DATABASE_URL: urlAs(users.command),
        QUERY_DATABASE_URL: urlAs(users.query),
        PROJECTOR_DATABASE_URL: urlAs(users.projector),
        PROJECTION_POLL_INTERVAL_MS: '100',
        SNAPSHOT_INTERVALS: 'account:2', // the command side writes snapshots, time travel reads them
      },
      database,
    );
  });

  afterAll(async () => {
    await t?.close();
  });

  it('serves commands, queries, transfers, history, the feed and a rebuild, each side connected as its own user', async () => {
    const open = async (name: string) => (await t.http.post('/accounts').send({ ownerName: name, currency: 'EUR' }).expect(201)).body;
    const source = await open('Least');
    const target = await open('Privilege');
    await t.http.post(`/accounts/${source.id}/deposits`).set('Idempotency-Key', `roles-${source.id}`).send({ amount: 500 }).expect(200);
    const withdrawn = await t.http.post(`/accounts/${source.id}/withdrawals`).send({ amount: 100 }).expect(200);
    const transfer = await t.http.post('/transfers').send({ fromAccountId: source.id, toAccountId: target.id, amount: 150 }).expect(202);

    const read = await t.http.get(`/accounts/${source.id}?minPosition=${withdrawn.body.position}`).expect(200);
    expect(read.body.version).toBeGreaterThanOrEqual(3);
    let settled: any;
    for (let tries = 0; tries < 100; tries++) {
      settled = (await t.http.get(`/transfers/${transfer.body.id}`)).body;
      if (settled?.status === 'completed') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(settled.status).toBe('completed');
    const history = await t.http.get(`/accounts/${source.id}/events`).expect(200);
    expect(history.body.items.length).toBeGreaterThanOrEqual(4);
    await t.http.get('/events?limit=5').expect(200);
    await t.http.get(`/accounts/${source.id}/state?atVersion=2`).expect(200);
    const snapshots = await owner.query('SELECT version FROM snapshots WHERE stream_id = $1 ORDER BY version', [`account-${source.id}`]);
    expect(snapshots.rows.map((row: { version: number }) => row.version)).toEqual(expect.arrayContaining([2]));
    const atThree = await t.http.get(`/accounts/${source.id}/state?atVersion=3`).expect(200);
    expect(atThree.body.balance).toBe(400);

    await t.http.post('/admin/projections/account-summary/rebuild').expect(202);
    let status: any;
    for (let tries = 0; tries < 100; tries++) {
      status = (await t.http.get('/admin/projections/account-summary')).body;
      if (status.lastRebuildCompletedAt && !status.rebuild) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(status).toEqual(expect.objectContaining({ rebuild: null, lastRebuildCompletedAt: expect.any(String) }));
    const after = await t.http.get(`/accounts/${source.id}`).expect(200);
    expect(after.body.balance).toBe(500 - 100 - 150);

    const { rows } = await owner.query('SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database() AND usename <> current_user');
    expect(rows.map((row) => row.usename).sort()).toEqual([users.command, users.projector, users.query].sort());
  });
});
