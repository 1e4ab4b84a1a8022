import type { DataSourceOptions } from 'typeorm';
import { migrations } from '../../migrations/index.js';
import { DEFAULT_SCHEMA, searchPathOption, urlSetsOptions } from './schema-name.js';

/**
 * Server-side limits set on every connection of the service's pools at connect time (pg startup
 * options, so no statement and no round trip is added): statement_timeout cancels a statement that
 * runs longer; idle_in_transaction_session_timeout ends a session whose transaction waits on its
 * client longer, because an open transaction holds back every projection's commit-safe horizon.
 * 0 turns one off. The migrating owner's connections get neither (migrations may run long), and a
 * rebuild's swap lifts statement_timeout for its own transaction (SET LOCAL).
 */
export interface ConnectionTimeouts {
  readonly statementMs: number;
  readonly idleInTransactionMs: number;
}

/**
 * TypeORM settings shared by the application and the migration command. Never `synchronize`.
 * Every connection of the pool starts with its search_path pinned to `schema` (pg's startup
 * `options`), so the SQL's unqualified table names resolve there and nowhere else.
 */
export function dataSourceOptions(
  url: string,
  poolSize: number,
  schema = DEFAULT_SCHEMA,
  timeouts?: ConnectionTimeouts,
): DataSourceOptions {
  if (urlSetsOptions(url))
    throw new Error('A database URL may not set `options`: the service pins each connection’s search_path itself (DATABASE_SCHEMA)');
  return {
    type: 'postgres',
    url,
    synchronize: false,
    migrationsRun: false, // run by runMigrations() under a lock, see migrate.ts
    migrations,
    migrationsTableName: 'typeorm_migrations',
    extra: { max: poolSize, options: startupOptions(schema, timeouts) },
  };
}

function startupOptions(schema: string, timeouts?: ConnectionTimeouts): string {
  const limits = timeouts
    ? ` -c statement_timeout=${Math.trunc(timeouts.statementMs)} -c idle_in_transaction_session_timeout=${Math.trunc(timeouts.idleInTransactionMs)}`
    : '';
  return searchPathOption(schema) + limits;
}
