import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../src/database/data-source-options.js';
import { type PreparedStatement, prepared } from '../src/event-sourcing/sql.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

// Review 2 of 232e5f2 (prepared(): rename after 0A000/42804/42883), watched failing there. Both cases run prepared() as a
// module author's projection batch does (docs/extending.md §5): inside a transaction, through its
// query runner, retried by the caller after a failure. One pooled connection, so that every attempt
// meets the same PostgreSQL session. (Outside a transaction pg-pool's pool.query destroys the
// connection on any error, so neither case shows there.)

let database: TestDatabase;
let dataSource: DataSource;

beforeAll(async () => {
  database = await createTestDatabase();
  dataSource = await new DataSource(dataSourceOptions(database.url, 1, 'public')).initialize();
}, 120_000);
afterAll(async () => {
  await dataSource?.destroy();
  await database?.drop();
});

async function preparedOnTheConnection(): Promise<string[]> {
  const rows = (await dataSource.query('SELECT name FROM pg_prepared_statements ORDER BY name')) as Array<{ name: string }>;
  return rows.map((row) => row.name);
}

async function failure(work: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await work();
    return undefined;
  } catch (error) {
    return (error as { driverError?: { code?: string } }).driverError?.code ?? (error as { code?: string }).code ?? String(error);
  }
}

describe('a statement failing with 0A000 for a reason that is not a stale type (a bad value)', () => {
  it('does not leave one more prepared statement on the connection per failed call', async () => {
    // 0A000 feature_not_supported at EXECUTION time ("cannot convert NaN to integer"): the Parse
    // succeeds, so the statement stays prepared on the connection; nothing a re-parse can fix.
    const statement: PreparedStatement = { name: 'review2_nan_to_int_v1', text: 'SELECT ($1::numeric)::int AS n' };
    const codes: Array<string | undefined> = [];
    // 20 attempts of a batch (a projection retrying a poison event): each in its own transaction.
    for (let n = 0; n < 20; n++)
      codes.push(await failure(() => dataSource.transaction((manager) => prepared(manager, statement, ['NaN']))));
    expect(new Set(codes)).toEqual(new Set(['0A000']));
    const left = (await preparedOnTheConnection()).filter((name) => name.startsWith(statement.name));
    // One (or, allowing a single re-parse after a real stale type, two) — not one per failure.
    expect(left.length).toBeLessThanOrEqual(2);
  });
});

describe('a statement whose name is 63 bytes (NAMEDATALEN - 1), after a column type change', () => {
  it('is refused before anything is sent, while a short-named one is parsed again after the change', async () => {
    await dataSource.query('CREATE TABLE review2_cards (id int PRIMARY KEY, c int NOT NULL)');
    await dataSource.query('INSERT INTO review2_cards VALUES (1, 7)');
    const short: PreparedStatement = { name: 'review2_cards_read_v1', text: 'SELECT c FROM review2_cards WHERE id = $1' };
    const long: PreparedStatement = {
      name: 'review2_cards_read_c_by_id_for_the_card_summary_projection_v001',
      text: 'SELECT c AS c2 FROM review2_cards WHERE id = $1',
    };
    expect(Buffer.byteLength(long.name)).toBe(63);
    // PostgreSQL keeps 63 bytes of a name: a rename of this one (<name>_1) would meet it as one and
    // fail with 42P05 for good (watched failing so on 232e5f2). Refused instead, before any Parse.
    await expect(dataSource.transaction((manager) => prepared(manager, long, [1]))).rejects.toThrow(/longer than 56 bytes/);
    expect(await preparedOnTheConnection()).not.toContain(long.name);

    expect(await dataSource.transaction((manager) => prepared(manager, short, [1]))).toEqual([{ c: 7 }]);
    await dataSource.query('ALTER TABLE review2_cards ALTER COLUMN c TYPE bigint');
    // Each in a transaction (a batch): the first attempt after the migration fails (0A000), and the
    // statement is renamed; the caller's next attempt parses it again and answers.
    const codes: Array<string | undefined> = [];
    for (let n = 0; n < 4; n++) codes.push(await failure(() => dataSource.transaction((manager) => prepared(manager, short, [1]))));
    expect(codes).toEqual(['0A000', undefined, undefined, undefined]);
  });
});
