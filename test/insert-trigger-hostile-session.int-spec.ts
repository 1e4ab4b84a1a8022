import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { startTestApp } from './support/test-app.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

// Found in review (hostile ledger_command breaks per-stream order): events_guard_insert() declares
// `previous xid8` and has no `SET search_path`. pg_temp is searched FIRST for type names (not only
// for relations), every role may create temporary objects, and a role may create a cast from a type
// it owns. A ledger_command session makes its own pg_temp.xid8 with an implicit cast to
// pg_catalog.xid8 that yields 0: `previous > NEW.transaction_id` is then always false, LE001 never
// fires, and the session appends after a head written by a younger transaction — every reader of the
// log (projections, rebuilds, GET /events, /events/live) then lists that stream out of version order.

const PASSWORD = 'review-test-password';
let database: TestDatabase;
let owner: pg.Client;
let hostile: pg.Client;
let user: string;

beforeAll(async () => {
  database = await createTestDatabase();
  const migrated = await startTestApp({ PROJECTIONS_ENABLED: 'false' }, database);
  await migrated.app.close();
  owner = new pg.Client({ connectionString: database.url });
  await owner.connect();
  user = `ledger_test_command_${randomBytes(4).toString('hex')}`;
  await owner.query(`CREATE ROLE ${user} LOGIN PASSWORD '${PASSWORD}' IN ROLE ledger_command`);
  const url = new URL(database.url);
  url.username = user;
  url.password = PASSWORD;
  hostile = new pg.Client({ connectionString: url.toString() });
  await hostile.connect();
});

afterAll(async () => {
  await hostile?.end();
  await owner?.end();
  await database?.drop();
  const server = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  await server.connect();
  if (user) await server.query(`DROP ROLE IF EXISTS ${user}`);
  await server.end();
});

const insert = `INSERT INTO public.events (stream_id, version, type, schema_version, event_id, data, metadata)
  VALUES ($1, $2, 'test.Thing', 1, $3, '{}', '{}')`;

async function connectAs(): Promise<pg.Client> {
  const url = new URL(database.url);
  url.username = user;
  url.password = PASSWORD;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  return client;
}

describe('review: the stream-order trigger holds against a hostile ledger_command session', () => {
  /** Appends version 3 from a transaction whose id was taken before version 2 was written; its outcome. */
  async function appendAfterYoungerHead(session: pg.Client, streamId: string): Promise<string> {
    await session.query('BEGIN');
    await session.query('SELECT pg_current_xact_id()'); // the older transaction id, taken now
    await owner.query(insert, [streamId, 2, randomUUID()]); // version 2 by a younger transaction, committed
    try {
      await session.query(insert, [streamId, 3, randomUUID()]);
      await session.query('COMMIT');
      return 'appended';
    } catch (error) {
      await session.query('ROLLBACK');
      return (error as { code?: string }).code ?? String(error);
    }
  }

  it('control: the same role without the temporary type gets LE001', async () => {
    const streamId = `review-${randomUUID()}`;
    await owner.query(insert, [streamId, 1, randomUUID()]);
    const url = new URL(database.url);
    url.username = user;
    url.password = PASSWORD;
    const plain = new pg.Client({ connectionString: url.toString() });
    await plain.connect();
    try {
      expect(await appendAfterYoungerHead(plain, streamId)).toBe('LE001');
    } finally {
      await plain.end();
    }
  });

  it('a session with a temporary type named xid8 still cannot append after a younger transaction’s head', async () => {
    const streamId = `review-${randomUUID()}`;
    await owner.query(insert, [streamId, 1, randomUUID()]);

    await hostile.query(`CREATE TYPE pg_temp.xid8 AS (v text)`);
    await hostile.query(
      `CREATE FUNCTION pg_temp.zero(pg_temp.xid8) RETURNS pg_catalog.xid8 LANGUAGE sql AS $$ SELECT '0'::pg_catalog.xid8 $$`,
    );
    await hostile.query(`CREATE CAST (pg_temp.xid8 AS pg_catalog.xid8) WITH FUNCTION pg_temp.zero(pg_temp.xid8) AS IMPLICIT`);

    const outcome = await appendAfterYoungerHead(hostile, streamId);
    const { rows } = await owner.query(`SELECT version FROM events WHERE stream_id = $1 ORDER BY transaction_id, position`, [streamId]);
    expect({ outcome, logOrder: rows.map((row) => row.version) }).toEqual({ outcome: 'LE001', logOrder: [1, 2] });
  });

  it('a session with a temporary type named regclass still cannot choose the position of its event', async () => {
    // The trigger's nextval('public.events_position_seq'::regclass): the literal is qualified, the type name is not.
    const forger = await connectAs();
    try {
      const { rows: head } = await owner.query('SELECT max(position)::text AS max FROM events');
      await forger.query(`CREATE TEMP SEQUENCE hidden START -1000 MINVALUE -1000000`);
      await forger.query(`CREATE TYPE pg_temp.regclass AS ENUM ('public.events_position_seq')`);
      await forger.query(
        `CREATE FUNCTION pg_temp.mine(pg_temp.regclass) RETURNS pg_catalog.regclass LANGUAGE sql AS $$ SELECT 'pg_temp.hidden'::pg_catalog.regclass $$`,
      );
      await forger.query(`CREATE CAST (pg_temp.regclass AS pg_catalog.regclass) WITH FUNCTION pg_temp.mine(pg_temp.regclass) AS IMPLICIT`);
      let position: string;
      try {
        const { rows } = await forger.query(`${insert} RETURNING position::text`, [`review-${randomUUID()}`, 1, randomUUID()]);
        position = rows[0].position;
      } catch (error) {
        position = `refused: ${(error as Error).message}`;
      }
      expect({ position, aboveHead: /^-?[0-9]+$/.test(position) && BigInt(position) > BigInt(head[0].max) }).toEqual({
        position,
        aboveHead: true,
      });
    } finally {
      await forger.end();
    }
  });
});

describe('the lease fence holds against a hostile ledger_command session', () => {
  it('a temporary projection_checkpoints table claiming the lease does not answer ledger_fence', async () => {
    const session = await connectAs();
    try {
      await session.query(`CREATE TEMPORARY TABLE projection_checkpoints AS
        SELECT 'transfer-process'::text AS name, 'intruder'::text AS lease_owner, 7::bigint AS lease_token,
               clock_timestamp() + interval '1 hour' AS lease_expires_at`);
      await expect(session.query(`SELECT ledger_fence('transfer-process', 'intruder', 7)`)).rejects.toMatchObject({ code: 'LF001' });
    } finally {
      await session.end();
    }
  });
});
