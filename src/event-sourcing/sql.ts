import type pg from 'pg';
import { type EntityManager, QueryFailedError } from 'typeorm';

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
 * Runs a hot statement prepared: PostgreSQL parses and plans it once per connection instead of on
 * every call (measured on the append: docs/BENCHMARKS.md). TypeORM only sends unnamed statements, so
 * this talks to the pg connection underneath — the transaction's own when the manager has one,
 * otherwise a pooled connection (the statement then commits on its own).
 */
export async function prepared<Row>(manager: EntityManager, statement: PreparedStatement, values: readonly unknown[]): Promise<Row[]> {
  const query = { name: statement.name, text: statement.text, values: [...values] };
  const runner = manager.queryRunner;
  // Told to TypeORM's logger as its own query() does: its query log (and whoever reads it) sees every statement.
  const logger = manager.dataSource.logger;
  logger.logQuery(statement.text, query.values, runner);
  try {
    if (runner) {
      const client = (runner as { databaseConnection?: pg.PoolClient }).databaseConnection ?? ((await runner.connect()) as pg.PoolClient);
      return (await client.query(query)).rows as Row[];
    }
    const pool = (manager.dataSource.driver as unknown as { master: pg.Pool }).master;
    return (await pool.query(query)).rows as Row[];
  } catch (error) {
    // Failures look as they do from TypeORM's query(): logged, and a QueryFailedError around the driver's error.
    logger.logQueryError(error as Error, statement.text, query.values, runner);
    throw new QueryFailedError(statement.text, [...values], error as Error);
  }
}
