import type pg from 'pg';
import { type EntityManager, QueryFailedError, QueryRunnerProviderAlreadyReleasedError } from 'typeorm';

export interface SqlResult<Row> {
  readonly rows: Row[];
  readonly rowCount: number;
}

/**
 * Runs one statement through TypeORM's query runner and always answers { rows, rowCount }
 * (EntityManager.query answers [rows, count] for UPDATE/DELETE and rows otherwise). Inside a
 * transaction the transaction's connection is used; otherwise one is borrowed from the pool.
 */
export async function sql<Row = Record<string, unknown>>(
  manager: EntityManager,
  text: string,
  parameters: readonly unknown[] = [],
): Promise<SqlResult<Row>> {
  const runner = manager.queryRunner ?? manager.dataSource.createQueryRunner();
  try {
    const result = await runner.query(text, [...parameters], true);
    return { rows: (result.records ?? []) as Row[], rowCount: result.affected ?? result.records?.length ?? 0 };
  } finally {
    if (!manager.queryRunner) await runner.release();
  }
}

/** A statement run as a named (prepared) one: see `prepared`. */
export interface PreparedStatement {
  /** Unique per statement text: PostgreSQL keeps the plan per connection under this name. */
  readonly name: string;
  readonly text: string;
}

/**
 * SQLSTATEs with which a prepared statement can fail after a migration changed a type under it, where
 * the same text sent unnamed works: its result columns changed type (0A000, "cached plan must not
 * change result type"), or a parameter keeps the type it was first parsed with (42804
 * datatype_mismatch: no assignment cast to the column's new type; 42883 undefined_function: no
 * operator for the old one). Parsed again, it takes the new types (found in review).
 */
const STALE_TYPE_SQLSTATES = new Set(['0A000', '42804', '42883']);

/**
 * Per statement, how many times this process has renamed it after one of those failures: it then goes
 * under a new name (`<name>_<n>`), so every connection parses it again instead of each one failing
 * once. A name parsed before stays on its connections, unused, until they close, so renaming is
 * bounded: only a name that has run (a statement that has never run is not stale, it is wrong, or it
 * fails for its values), and at most MAX_RENAMES times per statement in a process's life (found in
 * review: a poison value failing with 0A000 in every retried batch left one more statement per
 * attempt on the connection).
 */
const renamings = new Map<string, number>();
const namesThatRan = new Set<string>();
const MAX_RENAMES = 8;
/**
 * PostgreSQL keeps the first 63 bytes of a name: two longer names would meet as one, and a rename
 * could not be told from its original (found in review). This leaves room for the rename's suffix.
 */
const MAX_NAME_BYTES = 56;

function currentName(statement: PreparedStatement): string {
  const renamed = renamings.get(statement.name);
  return renamed ? `${statement.name}_${renamed}` : statement.name;
}

/** After a stale-type failure under `usedName`, a name that has run: a new name, once, however many runs failed under it. */
function renameAfterStaleType(statement: PreparedStatement, usedName: string, error: unknown): boolean {
  if (!STALE_TYPE_SQLSTATES.has((error as { code?: string }).code ?? '') || !namesThatRan.has(usedName)) return false;
  const renamed = renamings.get(statement.name) ?? 0;
  if (currentName(statement) !== usedName) return true; // renamed meanwhile by another run that failed under it
  if (renamed >= MAX_RENAMES) return false;
  renamings.set(statement.name, renamed + 1);
  return true;
}

/**
 * Runs a hot statement prepared: PostgreSQL parses and plans it once per connection instead of on
 * every call (measured on the append: docs/BENCHMARKS.md). TypeORM only sends unnamed statements, so
 * this talks to the pg connection underneath — the transaction's own when the manager has one,
 * otherwise a pooled connection (the statement then commits on its own).
 *
 * After a migration changed a type under it, a prepared statement fails where an unnamed one would
 * not (STALE_TYPE_SQLSTATES): it is parsed again under a new name from then on. Outside a transaction
 * the run (which failed as a whole, changing nothing) is retried at once under that name. Inside one
 * the transaction is aborted and the failure reaches the caller; its retry (a projection's or a
 * reaction's next attempt) parses the statement again, while a request's unit of work answers 500
 * once. That is once per statement for the whole process, not once per connection.
 */
export async function prepared<Row>(manager: EntityManager, statement: PreparedStatement, values: readonly unknown[]): Promise<Row[]> {
  if (Buffer.byteLength(statement.name) > MAX_NAME_BYTES) {
    throw new Error(`Prepared statement name "${statement.name}" is longer than ${MAX_NAME_BYTES} bytes: PostgreSQL would cut it`);
  }
  const runner = manager.queryRunner;
  // TypeORM's query() refuses a released runner; its pg connection would be another borrower's by now.
  if (runner?.isReleased) throw new QueryRunnerProviderAlreadyReleasedError();
  const parameters = [...values];
  // Told to TypeORM's logger as its own query() does: its query log (and whoever reads it) sees every statement.
  const logger = manager.dataSource.logger;
  logger.logQuery(statement.text, parameters, runner);
  const send = async (name: string): Promise<Row[]> => {
    const query = { name, text: statement.text, values: parameters };
    if (runner) {
      const client = (runner as { databaseConnection?: pg.PoolClient }).databaseConnection ?? ((await runner.connect()) as pg.PoolClient);
      return (await client.query(query)).rows as Row[];
    }
    return (await (manager.dataSource.driver as unknown as { master: pg.Pool }).master.query(query)).rows as Row[];
  };
  try {
    const name = currentName(statement);
    try {
      const rows = await send(name);
      namesThatRan.add(name);
      return rows;
    } catch (error) {
      if (!renameAfterStaleType(statement, name, error) || runner?.isTransactionActive) throw error;
      return await send(currentName(statement));
    }
  } catch (error) {
    // Failures look as they do from TypeORM's query(): logged, and a QueryFailedError around the driver's error.
    logger.logQueryError(error as Error, statement.text, parameters, runner);
    throw new QueryFailedError(statement.text, parameters, error as Error);
  }
}
