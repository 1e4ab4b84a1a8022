import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { type TestApp, startTestApp } from './support/test-app.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

// Found in review (consequence of the pg_temp type shadowing in events_guard_insert): one INSERT by a
// ledger_command session, with a pg_temp.regclass of its own, gives its event the position
// 2^53 + 1. Events can never be deleted, and every reader turns positions into safe integers
// (toSafeNumber throws): GET /events answers 500 from then on, for everyone, for good.

const PASSWORD = 'review-test-password';
let database: TestDatabase;
let t: TestApp;
let user: string;

beforeAll(async () => {
  database = await createTestDatabase();
  t = await startTestApp({}, database);
  user = `ledger_test_forger_${randomBytes(4).toString('hex')}`;
  await t.dataSource.query(`CREATE ROLE ${user} LOGIN PASSWORD '${PASSWORD}' IN ROLE ledger_command`);
});

afterAll(async () => {
  await t?.close();
  await database?.drop();
  const server = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  await server.connect();
  if (user) await server.query(`DROP ROLE IF EXISTS ${user}`);
  await server.end();
});

describe('review: no ledger_command session can poison the log for every reader', () => {
  it('GET /events still answers after a hostile session appended one event', async () => {
    const opened = await t.http.post('/accounts').send({ ownerName: 'Victim', currency: 'EUR' }).expect(201);
    expect((await t.http.get('/events').query({ limit: 10 })).status).toBe(200);

    const url = new URL(database.url);
    url.username = user;
    url.password = PASSWORD;
    const forger = new pg.Client({ connectionString: url.toString() });
    await forger.connect();
    try {
      await forger.query(`CREATE TEMP SEQUENCE poison START 9007199254740993`);
      await forger.query(`CREATE TYPE pg_temp.regclass AS ENUM ('public.events_position_seq')`);
      await forger.query(
        `CREATE FUNCTION pg_temp.mine(pg_temp.regclass) RETURNS pg_catalog.regclass LANGUAGE sql AS $$ SELECT 'pg_temp.poison'::pg_catalog.regclass $$`,
      );
      await forger.query(`CREATE CAST (pg_temp.regclass AS pg_catalog.regclass) WITH FUNCTION pg_temp.mine(pg_temp.regclass) AS IMPLICIT`);
      const accountId = randomUUID();
      await forger.query(
        `INSERT INTO public.events (stream_id, version, type, schema_version, event_id, data, metadata)
         VALUES ($1, 1, 'accounts.AccountOpened', 1, $2, $3, $4)`,
        [
          `account-${accountId}`,
          randomUUID(),
          JSON.stringify({ accountId, ownerName: 'Forged', currency: 'EUR' }),
          JSON.stringify({ correlationId: randomUUID(), causationId: randomUUID(), occurredAt: new Date().toISOString() }),
        ],
      );
    } finally {
      await forger.end();
    }
    expect(opened.body.id).toBeDefined();
    const after = await t.http.get('/events').query({ limit: 10 });
    expect({ status: after.status, code: after.body.code }).toEqual({ status: 200, code: undefined });
  });
});
