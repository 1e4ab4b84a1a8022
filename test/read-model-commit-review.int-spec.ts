// The hostile review of the read model's one-message end of batch (advanceAndCommit:
// `SELECT * FROM ledger_advance_checkpoint(<literals>); COMMIT`, through transactionEndedBy), kept
// as tests against the migrated database: hostile literals, every way the message can fail, the row
// it answers, privileges and schemas, and what a connection lost during the message means.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { DataSource, type EntityManager } from 'typeorm';
import { AdvanceReadModelsWithCommit1764230400020 } from '../migrations/1764230400020-advance-read-models-with-commit.js';
import { dataSourceOptions } from '../src/database/data-source-options.js';
import { runMigrations } from '../src/database/run-migrations.js';
import { transactionEndedBy } from '../src/event-sourcing/fenced-transaction.js';
import { advanceAndCommit } from '../src/event-sourcing/projection-advance-sql.js';
import type { Checkpoint } from '../src/event-sourcing/recorded-event.js';
import { startCuttingProxy } from './support/tcp-proxy.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

const FROM: Checkpoint = { transactionId: '0', position: 0 };
const TO: Checkpoint = { transactionId: '12345', position: 7 };
const UNMOVED = { position: '0', transaction_id: '0' };

let database: TestDatabase;
/** ONE connection: a transaction left open on it would show in every later case. */
let dataSource: DataSource;
let admin: pg.Client;

class Refused extends Error {}

const codeOf = (error: unknown) => (error as { driverError?: { code?: string } } | undefined)?.driverError?.code;
const databaseName = () => new URL(database.url).pathname.slice(1);

async function seed(name: string, owner = 'holder', token = '3'): Promise<void> {
  await admin.query('DELETE FROM projection_checkpoints WHERE name = $1', [name]);
  await admin.query(
    `INSERT INTO projection_checkpoints (name, projection, lease_owner, lease_token, lease_expires_at)
     VALUES ($1, $1, $2, $3, clock_timestamp() + interval '1 hour')`,
    [name, owner, token],
  );
}

async function checkpoint(name: string): Promise<{ position: string; transaction_id: string } | undefined> {
  return (await admin.query('SELECT position, transaction_id FROM projection_checkpoints WHERE name = $1', [name])).rows[0];
}

async function written(tag: string): Promise<number> {
  return Number((await admin.query('SELECT count(*) AS n FROM review_writes WHERE tag = $1', [tag])).rows[0].n);
}

/** Sessions of this database, other than admin's, inside a transaction. */
async function inTransaction(): Promise<string[]> {
  const { rows } = await admin.query<{ state: string }>(
    `SELECT state FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'`,
  );
  return rows.map((row) => row.state);
}

/** A read model's batch as the engine runs it: a write, then the move with the COMMIT. */
function batch(
  name: string,
  owner: string,
  token: string,
  tag: string,
  extra?: (manager: EntityManager) => Promise<void>,
  on: DataSource = dataSource,
) {
  return transactionEndedBy(
    on,
    async (manager) => {
      await manager.query('INSERT INTO review_writes (tag) VALUES ($1)', [tag]);
      if (extra) await extra(manager);
    },
    async (queryRunner) => {
      const state = await advanceAndCommit(queryRunner, name, owner, token, FROM, TO, 60_000);
      if (!state) throw new Refused();
      return state;
    },
  );
}

function asUser(url: string, user: string): string {
  const withUser = new URL(url);
  withUser.username = user;
  withUser.password = 'pw';
  return withUser.toString();
}

async function openDataSource(url: string, schema?: string): Promise<DataSource> {
  return new DataSource(dataSourceOptions(url, 1, schema)).initialize();
}

beforeAll(async () => {
  database = await createTestDatabase();
  const migrator = await new DataSource(dataSourceOptions(database.url, 2)).initialize();
  await runMigrations(migrator);
  await migrator.destroy();
  dataSource = await openDataSource(database.url);
  admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  await admin.query('CREATE TABLE review_writes (tag text, n int, CONSTRAINT review_writes_n UNIQUE (n) DEFERRABLE INITIALLY DEFERRED)');
  await admin.query('GRANT ALL ON review_writes TO ledger_projector');
});

afterAll(async () => {
  await admin?.end();
  await dataSource?.destroy();
  await database?.drop();
});

describe('the literals of the message', () => {
  const hostile = [`o'wner`, `back\\slash`, `both\\'; SELECT pg_sleep(5); --`, `\\'); DROP TABLE review_writes; --`, `é漢字🙂$$ $q$`];
  for (const conforming of ['on', 'off']) {
    it(`carry names and owners with quotes and backslashes exactly, standard_conforming_strings ${conforming}`, async () => {
      await admin.query(`ALTER DATABASE ${databaseName()} SET standard_conforming_strings = ${conforming}`);
      await dataSource.destroy(); // new connections take the setting
      dataSource = await openDataSource(database.url);
      const [{ standard_conforming_strings: seen }] = await dataSource.query('SHOW standard_conforming_strings');
      expect(seen).toBe(conforming);
      for (const value of hostile) {
        await seed(value, value);
        const { ended } = await batch(value, value, '3', `q-${conforming}-${value}`);
        expect(ended.name).toBe(value);
        expect(ended.leaseOwner).toBe(value);
        expect(await checkpoint(value)).toEqual({ position: '7', transaction_id: '12345' });
        await seed(value, value);
        await expect(batch(value, `${value}x`, '3', `miss-${conforming}-${value}`)).rejects.toBeInstanceOf(Refused);
        expect(await written(`miss-${conforming}-${value}`)).toBe(0);
      }
      expect(await inTransaction()).toEqual([]);
      await admin.query(`ALTER DATABASE ${databaseName()} RESET standard_conforming_strings`);
      await dataSource.destroy();
      dataSource = await openDataSource(database.url);
    });
  }

  it('refuse a token or id that is not plainly a whole number before anything is sent', async () => {
    await seed('ids', 'o');
    for (const token of ['', ' ', '0x3', '3 ', '3; COMMIT', '1e3', '3.0']) {
      const attempt = transactionEndedBy(
        dataSource,
        async () => undefined,
        async (queryRunner) => advanceAndCommit(queryRunner, 'ids', 'o', token, FROM, TO, 1000),
      );
      await expect(attempt).rejects.toBeInstanceOf(RangeError);
    }
    const badPosition = transactionEndedBy(
      dataSource,
      async () => undefined,
      async (queryRunner) => advanceAndCommit(queryRunner, 'ids', 'o', '3', FROM, { transactionId: '12345', position: 7.5 }, 1000),
    );
    await expect(badPosition).rejects.toBeInstanceOf(RangeError);
    expect(await checkpoint('ids')).toEqual(UNMOVED);
    expect(await inTransaction()).toEqual([]);
  });
});

describe('a batch whose end fails', () => {
  it('refused (LF001): nothing written, the checkpoint where it was, the one connection idle and usable', async () => {
    await seed('refused');
    await expect(batch('refused', 'holder', '2', 'refused')).rejects.toBeInstanceOf(Refused);
    expect(await written('refused')).toBe(0);
    expect(await checkpoint('refused')).toEqual(UNMOVED);
    expect(await inTransaction()).toEqual([]);
    expect(await dataSource.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });

  it('at its COMMIT (a deferred unique violation): nothing written, the error names the COMMIT, the connection idle', async () => {
    await seed('deferred');
    const error = await batch('deferred', 'holder', '3', 'deferred', async (manager) => {
      await manager.query(`INSERT INTO review_writes (tag, n) VALUES ('deferred', 1), ('deferred', 1)`);
    }).catch((failure: unknown) => failure);
    expect(codeOf(error)).toBe('23505');
    expect((error as { query?: string }).query).toMatch(/; COMMIT$/);
    expect(await written('deferred')).toBe(0);
    expect(await checkpoint('deferred')).toEqual(UNMOVED);
    expect(await inTransaction()).toEqual([]);
  });

  it('at its COMMIT (a serialization failure): nothing committed', async () => {
    await seed('serial');
    const other = new pg.Client({ connectionString: database.url });
    await other.connect();
    let error: unknown;
    try {
      error = await transactionEndedBy(
        dataSource,
        async (manager) => {
          await manager.query('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE');
          await manager.query(`SELECT count(*) FROM review_writes WHERE tag = 'serial-other'`);
          await manager.query(`INSERT INTO review_writes (tag) VALUES ('serial')`);
          // The other transaction reads what this one writes, writes what it read, and commits first.
          await other.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
          await other.query(`SELECT count(*) FROM review_writes WHERE tag = 'serial'`);
          await other.query(`INSERT INTO review_writes (tag) VALUES ('serial-other')`);
          await other.query('COMMIT');
        },
        async (queryRunner) => advanceAndCommit(queryRunner, 'serial', 'holder', '3', FROM, TO, 60_000),
      ).catch((failure: unknown) => failure);
    } finally {
      await other.end();
    }
    expect(codeOf(error)).toBe('40001');
    expect(await written('serial')).toBe(0);
    expect(await checkpoint('serial')).toEqual(UNMOVED);
    expect(await inTransaction()).toEqual([]);
  });

  it('by statement_timeout while the move waits for the row: nothing committed, the connection idle and usable', async () => {
    await seed('timeout');
    const locker = new pg.Client({ connectionString: database.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`SELECT * FROM projection_checkpoints WHERE name = 'timeout' FOR UPDATE`);
      const error = await batch('timeout', 'holder', '3', 'timeout', async (manager) => {
        await manager.query(`SET LOCAL statement_timeout = '300ms'`);
      }).catch((failure: unknown) => failure);
      expect(codeOf(error)).toBe('57014');
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    expect(await written('timeout')).toBe(0);
    expect(await checkpoint('timeout')).toEqual(UNMOVED);
    expect(await inTransaction()).toEqual([]);
    expect(await dataSource.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });

  it('by its backend killed while the move waits for the row: nothing committed, the pool replaces the connection', async () => {
    await seed('killed');
    const locker = new pg.Client({ connectionString: database.url });
    await locker.connect();
    let error: unknown;
    try {
      await locker.query('BEGIN');
      await locker.query(`SELECT * FROM projection_checkpoints WHERE name = 'killed' FOR UPDATE`);
      const pending = batch('killed', 'holder', '3', 'killed').catch((failure: unknown) => failure);
      let killed = false;
      for (let i = 0; i < 250 && !killed; i++) {
        const { rows } = await admin.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity WHERE datname = current_database()
             AND query LIKE 'SELECT * FROM ledger_advance_checkpoint%' AND wait_event_type = 'Lock'`,
        );
        if (rows.length) {
          await admin.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
          killed = true;
        } else await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(killed).toBe(true);
      error = await pending;
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    expect(error).toBeInstanceOf(Error);
    expect(await written('killed')).toBe(0);
    expect(await checkpoint('killed')).toEqual(UNMOVED);
    expect(await dataSource.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });
});

describe('the row the move answers', () => {
  it('has the types the engine expects (a token past 2^53 stays exact)', async () => {
    await seed('types', 'holder', '9007199254740993');
    const { ended } = await batch('types', 'holder', '9007199254740993', 'types');
    expect(ended.leaseToken).toBe('9007199254740993');
    expect(ended.checkpoint).toEqual(TO);
    expect(ended.leaseExpiresAt).toBeInstanceOf(Date);
    expect(ended.completedAhead).toEqual([]);
    expect(ended.attempts).toBe(0);
  });

  it('follows a column added and dropped by another session after this one ran the function', async () => {
    await seed('alter');
    await batch('alter', 'holder', '3', 'alter-1'); // the pooled session has the function compiled
    await admin.query(`ALTER TABLE projection_checkpoints ADD COLUMN review_extra text DEFAULT 'x'`);
    await seed('alter');
    expect((await batch('alter', 'holder', '3', 'alter-2')).ended.name).toBe('alter');
    await admin.query(`ALTER TABLE projection_checkpoints DROP COLUMN review_extra`);
    await seed('alter');
    expect((await batch('alter', 'holder', '3', 'alter-3')).ended.name).toBe('alter');
  });
});

describe('privileges and schemas', () => {
  it('a login with only the projector’s table grants, made after the migration, can move; the query role cannot', async () => {
    const suffix = Math.random().toString(16).slice(2, 8);
    const late = `review_late_${suffix}`;
    const query = `review_query_${suffix}`;
    // What a DBA gives a projector login later, from the roles table: table rights, no function grant.
    await admin.query(`CREATE ROLE ${late} LOGIN PASSWORD 'pw'`);
    await admin.query(`GRANT SELECT, UPDATE ON projection_checkpoints TO ${late}`);
    await admin.query(`GRANT ALL ON review_writes TO ${late}`);
    await admin.query(`CREATE ROLE ${query} LOGIN PASSWORD 'pw' IN ROLE ledger_query`);
    const asLate = await openDataSource(asUser(database.url, late));
    const asQuery = await openDataSource(asUser(database.url, query));
    try {
      await seed('roles');
      const { ended } = await batch('roles', 'holder', '3', 'roles', undefined, asLate);
      expect(ended.checkpoint.position).toBe(7);
      await seed('roles');
      const denied = await transactionEndedBy(
        asQuery,
        async () => undefined,
        async (queryRunner) => advanceAndCommit(queryRunner, 'roles', 'holder', '3', FROM, TO, 60_000),
      ).catch((failure: unknown) => failure);
      expect(codeOf(denied)).toBe('42501'); // SECURITY INVOKER: the query role may not update checkpoints
      expect(await checkpoint('roles')).toEqual(UNMOVED);
    } finally {
      await asLate.destroy();
      await asQuery.destroy();
      await admin.query(`DROP OWNED BY ${late}`);
      await admin.query(`DROP ROLE ${late}`);
      await admin.query(`DROP ROLE ${query}`);
    }
  });

  it('in a schema of its own (DATABASE_SCHEMA) it ignores a decoy table in public; the migration goes down and up again', async () => {
    const other = await createTestDatabase();
    const inSchema = await new DataSource(dataSourceOptions(other.url, 2, 'ledger_review')).initialize();
    const client = new pg.Client({ connectionString: other.url });
    await client.connect();
    try {
      await runMigrations(inSchema, 'ledger_review');
      const { rows: where } = await client.query<{ nspname: string }>(
        `SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE proname = 'ledger_advance_checkpoint'`,
      );
      expect(where.map((row) => row.nspname)).toEqual(['ledger_review']);
      await client.query(
        `INSERT INTO ledger_review.projection_checkpoints (name, projection, lease_owner, lease_token, lease_expires_at)
         VALUES ('s', 's', 'o', 1, clock_timestamp() + interval '1 hour')`,
      );
      await client.query(`CREATE TABLE public.projection_checkpoints (LIKE ledger_review.projection_checkpoints)`);
      const { ended } = await transactionEndedBy(
        inSchema,
        async () => undefined,
        async (queryRunner) => advanceAndCommit(queryRunner, 's', 'o', '1', FROM, TO, 60_000),
      );
      expect(ended?.checkpoint.position).toBe(7);
      const count = async () =>
        Number((await client.query(`SELECT count(*) AS n FROM pg_proc WHERE proname = 'ledger_advance_checkpoint'`)).rows[0].n);
      const migration = new AdvanceReadModelsWithCommit1764230400020();
      const runner = inSchema.createQueryRunner();
      try {
        await migration.down(runner);
        expect(await count()).toBe(0);
        await migration.up(runner);
        expect(await count()).toBe(1);
      } finally {
        await runner.release();
      }
    } finally {
      await client.end();
      await inSchema.destroy();
      await other.drop();
    }
  });
});

describe('a connection lost while the move waits for its row', () => {
  it('is reported failed, the batch commits with its checkpoint once the row is free, and a second try from the old checkpoint is refused', async () => {
    // Cuts the client's side as soon as the message with the move has gone up; the server keeps it.
    const proxy = await startCuttingProxy(database.url, (text) => text.includes('ledger_advance_checkpoint'));
    const throughProxy = await openDataSource(proxy.url);
    const locker = new pg.Client({ connectionString: database.url });
    await locker.connect();
    try {
      await seed('cut');
      // The row is busy (a lease renewal, a takeover that will roll back, a rebuild's swap).
      await locker.query('BEGIN');
      await locker.query(`SELECT 1 FROM projection_checkpoints WHERE name = 'cut' FOR UPDATE`);
      const outcome = await batch('cut', 'holder', '3', 'cut', undefined, throughProxy).then(
        () => 'committed',
        (error: unknown) => `failed: ${(error as Error).message}`,
      );
      await locker.query('ROLLBACK');
      for (let i = 0; i < 150 && (await written('cut')) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(outcome).toMatch(/^failed/);
      expect(await written('cut')).toBe(1);
      expect(await checkpoint('cut')).toEqual({ position: '7', transaction_id: '12345' });
      // The runner, which saw a failure, tries the batch again from where it was: refused, once only.
      await expect(batch('cut', 'holder', '3', 'cut')).rejects.toBeInstanceOf(Refused);
      expect(await written('cut')).toBe(1);
    } finally {
      await locker.end();
      await throughProxy.destroy().catch(() => undefined);
      await proxy.close();
    }
  });
});
