import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { expectProblemAnswer } from './support/problem.js';
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
/** Where a rebuild writes its fresh copies (made by the migrations, for the default main schema). */
const REBUILD_SCHEMA = 'public_rebuild';

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
    const { rows } = await owner.query(
      `SELECT rolname, rolcanlogin, rolsuper FROM pg_roles WHERE rolname LIKE 'ledger\\_%' AND rolname NOT LIKE 'ledger\\_test\\_%' ORDER BY rolname`,
    );
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
    expect(
      await attempt(
        'command',
        `INSERT INTO idempotency_keys (key, fingerprint, status_code, headers, expires_at) VALUES ('k', 'f', 200, '{}', now())`,
      ),
    ).toBe('ok');
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

describe('ledger_command, hostile', () => {
  // An event placed below every checkpoint is folded by aggregates but never projected; one backdated
  // rewrites what time travel answers. The role may not even name these columns.
  const forged: ReadonlyArray<[string, string]> = [
    [
      'position',
      `INSERT INTO events (position, stream_id, version, type, event_id, data, metadata) OVERRIDING SYSTEM VALUE VALUES (0, $1, 1, 'test.Thing', $2, '{}', '{}')`,
    ],
    [
      'transaction_id',
      `INSERT INTO events (stream_id, version, type, event_id, data, metadata, transaction_id) VALUES ($1, 1, 'test.Thing', $2, '{}', '{}', '1'::xid8)`,
    ],
    [
      'recorded_at',
      `INSERT INTO events (stream_id, version, type, event_id, data, metadata, recorded_at) VALUES ($1, 1, 'test.Thing', $2, '{}', '{}', '2000-01-01T00:00:00Z')`,
    ],
  ];

  it('may not choose an event’s position, transaction id or recording time, and still appends as the store does', async () => {
    for (const [column, statement] of forged) {
      expect({ column, result: await attempt('command', statement, eventValues()) }).toEqual({ column, result: DENIED });
    }
    const storeColumns = `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata) VALUES ($1, 1, 'test.Thing', 1, $2, '{}', '{}')`;
    expect(await attempt('command', storeColumns, eventValues())).toBe('ok');
  });

  it('cannot steer the values the database sets with temporary objects of its own session', async () => {
    // What a trigger that names a sequence or table without its schema would fall for: pg_temp
    // comes first for relations, and every role may create temporary objects.
    const client = clients.command;
    await client.query('BEGIN');
    try {
      const { rows: before } = await client.query('SELECT coalesce(max(position), 0)::text AS max FROM public.events');
      await client.query('SET LOCAL search_path = pg_temp, public');
      await client.query('CREATE TEMP SEQUENCE events_position_seq MINVALUE -10 START -10');
      // …and for pg_get_serial_sequence('events', 'position'), which looks the table up by name.
      await client.query(
        'CREATE TEMP TABLE events (position bigint GENERATED ALWAYS AS IDENTITY (MINVALUE -10 START WITH -10), recorded_at timestamptz)',
      );
      const [streamId, eventId] = eventValues();
      const { rows } = await client.query(
        `INSERT INTO public.events (stream_id, version, type, schema_version, event_id, data, metadata) VALUES ($1, 1, 'test.Thing', 1, $2, '{}', '{}')
         RETURNING position::text, transaction_id = pg_current_xact_id() AS own_transaction, recorded_at >= statement_timestamp() AS recorded_now`,
        [streamId, eventId],
      );
      expect(BigInt(rows[0].position)).toBeGreaterThan(BigInt(before[0].max));
      expect(rows[0]).toMatchObject({ own_transaction: true, recorded_now: true });
    } finally {
      await client.query('ROLLBACK');
    }
  });

  // Passes once the lead's BEFORE INSERT trigger on events (migration 1764230400012) is merged: the
  // database sets these columns whatever any role, the owner included, sends.
  it('[needs the events trigger of migration 1764230400012] even the owner’s INSERT gets the database’s position, transaction id and recording time', async () => {
    await owner.query('BEGIN');
    try {
      const { rows: before } = await owner.query('SELECT coalesce(max(position), 0)::text AS max FROM public.events');
      const [streamId, eventId] = eventValues();
      const { rows } = await owner.query(
        `INSERT INTO public.events (position, stream_id, version, type, schema_version, event_id, data, metadata, transaction_id, recorded_at)
         OVERRIDING SYSTEM VALUE VALUES (0, $1, 1, 'test.Thing', 1, $2, '{}', '{}', '1'::xid8, '2000-01-01T00:00:00Z')
         RETURNING position::text, transaction_id = pg_current_xact_id() AS own_transaction, recorded_at >= statement_timestamp() AS recorded_now`,
        [streamId, eventId],
      );
      expect({ positionAboveEveryOther: BigInt(rows[0].position) > BigInt(before[0].max), ...rows[0], position: undefined }).toEqual({
        positionAboveEveryOther: true,
        own_transaction: true,
        recorded_now: true,
        position: undefined,
      });
    } finally {
      await owner.query('ROLLBACK');
    }
  });
});

describe('ledger_query', () => {
  // Snapshots too: time travel runs on the query side and starts from them. A snapshot is a fold of
  // events this role may read in full anyway, so reading it discloses nothing more.
  it('reads the read tables, the event log, the checkpoints and the snapshots', async () => {
    for (const table of [
      'account_summaries',
      'account_transactions',
      'transfers',
      'events',
      'projection_checkpoints',
      'projection_skips',
      'snapshots',
    ]) {
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
    expect(
      await attempt(
        'query',
        `INSERT INTO snapshots (stream_id, aggregate, schema_version, version, position, state) VALUES ('s', 'account', 1, 1, 1, '{}')`,
      ),
    ).toBe(DENIED);
    expect(await attempt('query', 'UPDATE snapshots SET state = state')).toBe(DENIED);
    expect(await attempt('query', 'DELETE FROM snapshots')).toBe(DENIED);
    expect(await attempt('query', 'CREATE TABLE sneaky (id int)')).toBe(DENIED);
  });
});

describe('ledger_projector', () => {
  it('reads events, writes read tables and checkpoints, and creates and drops tables in the rebuild schema', async () => {
    expect(await attempt('projector', 'SELECT * FROM events LIMIT 1')).toBe('ok');
    expect(await attempt('projector', insertSummary, [randomUUID()])).toBe('ok');
    expect(await attempt('projector', `UPDATE account_summaries SET balance = 1`)).toBe('ok');
    expect(await attempt('projector', 'DELETE FROM account_transactions')).toBe('ok');
    expect(await attempt('projector', `UPDATE projection_checkpoints SET position = position`)).toBe('ok');
    expect(
      await attempt(
        'projector',
        `CREATE TABLE ${REBUILD_SCHEMA}.account_summaries (LIKE public.account_summaries INCLUDING ALL); DROP TABLE ${REBUILD_SCHEMA}.account_summaries`,
      ),
    ).toBe('ok');
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

describe('schemas and DDL, as every side', () => {
  it('no ledger role may create a schema — not one named after another side’s login user either', async () => {
    for (const side of SIDES) {
      for (const schema of [users.command, users.query, users.projector, 'role_test']) {
        expect({ side, schema, result: await attempt(side, `CREATE SCHEMA ${schema}`) }).toEqual({ side, schema, result: DENIED });
      }
    }
  });

  it('no ledger role may create a table in the main schema, nor command and query in the rebuild schema', async () => {
    for (const side of SIDES) {
      expect({ side, result: await attempt(side, 'CREATE TABLE public.sneaky (id int)') }).toEqual({ side, result: DENIED });
      expect({ side, result: await attempt(side, 'CREATE VIEW public.sneaky AS SELECT 1') }).toEqual({ side, result: DENIED });
    }
    for (const side of ['command', 'query'] as const) {
      expect({ side, result: await attempt(side, `CREATE TABLE ${REBUILD_SCHEMA}.sneaky (id int)`) }).toEqual({ side, result: DENIED });
    }
  });

  it('PUBLIC, which every role is a member of, may create neither schemas nor objects in the main schema', async () => {
    const { rows } = await owner.query(
      `SELECT 'database' AS object, privilege_type FROM pg_database, aclexplode(coalesce(datacl, acldefault('d', datdba)))
         WHERE datname = current_database() AND grantee = 0 AND privilege_type = 'CREATE'
       UNION ALL
       SELECT nspname, privilege_type FROM pg_namespace, aclexplode(coalesce(nspacl, acldefault('n', nspowner)))
         WHERE nspname IN ('public', $1) AND grantee = 0 AND privilege_type = 'CREATE'`,
      [REBUILD_SCHEMA],
    );
    expect(rows).toEqual([]);
  });
});

/**
 * The reproduced attack: a schema named after a login user comes first in PostgreSQL's default
 * search_path ("$user", public), so whoever could create it would capture that user's unqualified
 * SQL. Here the owner plants one for every login user the service connects as (the owner included),
 * each with an empty copy of every table; the service must not notice them.
 */
async function plantDecoySchemas(logins: readonly string[]): Promise<void> {
  const { rows: tables } = await owner.query<{ name: string }>(`SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'`);
  for (const login of logins) {
    const schema = owner.escapeIdentifier(login);
    await owner.query(`CREATE SCHEMA ${schema}`);
    for (const { name } of tables) {
      const table = owner.escapeIdentifier(name);
      await owner.query(`CREATE TABLE ${schema}.${table} (LIKE public.${table} INCLUDING DEFAULTS INCLUDING IDENTITY)`);
    }
    await owner.query(`GRANT USAGE ON SCHEMA ${schema} TO ${owner.escapeIdentifier(login)}`);
    await owner.query(`GRANT ALL ON ALL TABLES IN SCHEMA ${schema} TO ${owner.escapeIdentifier(login)}`);
    await owner.query(`GRANT ALL ON ALL SEQUENCES IN SCHEMA ${schema} TO ${owner.escapeIdentifier(login)}`);
  }
}

describe('the service with one least-privilege user per side', () => {
  let t: TestApp;

  let ownerLogin: string;
  const decoyAccountId = randomUUID();

  beforeAll(async () => {
    ownerLogin = (await owner.query('SELECT current_user AS name')).rows[0].name;
    await plantDecoySchemas([users.command, users.query, users.projector, ownerLogin]);
    // An account that exists only in the command and query users' decoys: a side that read there would find it.
    const metadata = {
      eventId: randomUUID(),
      correlationId: randomUUID(),
      causationId: randomUUID(),
      occurredAt: new Date().toISOString(),
      actor: 'decoy',
    };
    for (const login of [users.command, users.query]) {
      await owner.query(
        `INSERT INTO ${owner.escapeIdentifier(login)}.events (position, stream_id, version, type, schema_version, event_id, data, metadata)
         VALUES (1, $1, 1, 'accounts.AccountOpened', 1, $2, $3, $4)`,
        [`account-${decoyAccountId}`, metadata.eventId, { accountId: decoyAccountId, ownerName: 'Decoy', currency: 'EUR' }, metadata],
      );
    }
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
    // Qualified: this owner connection keeps the default search_path, and a decoy schema is named after the owner.
    const snapshots = await owner.query('SELECT version FROM public.snapshots WHERE stream_id = $1 ORDER BY version', [
      `account-${source.id}`,
    ]);
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

    const { rows } = await owner.query(
      'SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database() AND usename <> current_user',
    );
    expect(rows.map((row) => row.usename).sort()).toEqual([users.command, users.projector, users.query].sort());
  });

  it('appends to and reads the real tables, whatever schema is named after a login user', async () => {
    const opened = await t.http.post('/accounts').send({ ownerName: 'Real', currency: 'EUR' }).expect(201);
    await t.http.post(`/accounts/${opened.body.id}/deposits`).send({ amount: 70 }).expect(200);
    const count = async (schema: string) =>
      Number(
        (
          await owner.query(`SELECT count(*) FROM ${owner.escapeIdentifier(schema)}.events WHERE stream_id = $1`, [
            `account-${opened.body.id}`,
          ])
        ).rows[0].count,
      );
    expect({ real: await count('public'), decoy: await count(users.command) }).toEqual({ real: 2, decoy: 0 });

    // The decoy's account is unknown to the command side (it loads from the real table) and to the query side.
    expectProblemAnswer(await t.http.post(`/accounts/${decoyAccountId}/deposits`).send({ amount: 1 }), 404, 'ACCOUNT_NOT_FOUND');
    expectProblemAnswer(await t.http.get(`/accounts/${decoyAccountId}/events`), 404, 'ACCOUNT_NOT_FOUND');
    const read = await t.http.get(`/accounts/${opened.body.id}?minPosition=${opened.body.position}`).expect(200);
    expect(read.body.ownerName).toBe('Real');

    // Nothing was written to any decoy, the owner's (where the migrations would have run again) included.
    for (const login of [users.command, users.query, users.projector, ownerLogin]) {
      const { rows } = await owner.query(
        `SELECT (SELECT count(*) FROM ${owner.escapeIdentifier(login)}.events)::int AS events,
                (SELECT count(*) FROM ${owner.escapeIdentifier(login)}.account_summaries)::int AS summaries,
                (SELECT count(*) FROM ${owner.escapeIdentifier(login)}.projection_checkpoints)::int AS checkpoints,
                (SELECT count(*) FROM ${owner.escapeIdentifier(login)}.typeorm_migrations)::int AS migrations`,
      );
      expect({ login, ...rows[0] }).toEqual({
        login,
        events: login === users.command || login === users.query ? 1 : 0,
        summaries: 0,
        checkpoints: 0,
        migrations: 0,
      });
    }
  });
});

describe('the service in a schema of its own (DATABASE_SCHEMA)', () => {
  let t: TestApp;
  let other: TestDatabase;

  beforeAll(async () => {
    other = await createTestDatabase();
    t = await startTestApp({ DATABASE_SCHEMA: 'ledger_main', PROJECTION_POLL_INTERVAL_MS: '100' }, other);
  });

  afterAll(async () => {
    await t?.close();
    await other?.drop();
  });

  it('creates the schema, keeps every table there, and rebuilds in <schema>_rebuild', async () => {
    const opened = await t.http.post('/accounts').send({ ownerName: 'Schema', currency: 'EUR' }).expect(201);
    await t.http.get(`/accounts/${opened.body.id}?minPosition=${opened.body.position}`).expect(200);
    const client = new pg.Client({ connectionString: other.url });
    await client.connect();
    try {
      const { rows } = await client.query(
        `SELECT table_schema, count(*)::int AS tables FROM information_schema.tables WHERE table_name IN ('events', 'account_summaries', 'typeorm_migrations') GROUP BY 1`,
      );
      expect(rows).toEqual([{ table_schema: 'ledger_main', tables: 3 }]);
      expect(
        (await client.query(`SELECT count(*)::int AS n FROM ledger_main.events WHERE stream_id = $1`, [`account-${opened.body.id}`]))
          .rows[0].n,
      ).toBe(1);
      expect((await client.query(`SELECT to_regnamespace('ledger_main_rebuild') IS NOT NULL AS present`)).rows[0].present).toBe(true);
    } finally {
      await client.end();
    }

    await t.http.post('/admin/projections/account-summary/rebuild').expect(202);
    let status: any;
    for (let tries = 0; tries < 100; tries++) {
      status = (await t.http.get('/admin/projections/account-summary')).body;
      if (status.lastRebuildCompletedAt && !status.rebuild) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(status).toEqual(expect.objectContaining({ rebuild: null, lastError: null, lastRebuildCompletedAt: expect.any(String) }));
    expect((await t.http.get(`/accounts/${opened.body.id}`).expect(200)).body.ownerName).toBe('Schema');
  });
});
