import type { DataSourceOptions } from 'typeorm';
import { migrations } from '../../migrations/index.js';
import { DEFAULT_SCHEMA, searchPathOption, urlSetsOptions } from './schema-name.js';

/**
 * TypeORM settings shared by the application and the migration command. Never `synchronize`.
 * Every connection of the pool starts with its search_path pinned to `schema` (pg's startup
 * `options`), so the SQL's unqualified table names resolve there and nowhere else.
 */
export function dataSourceOptions(url: string, poolSize: number, schema = DEFAULT_SCHEMA): DataSourceOptions {
  if (urlSetsOptions(url))
    throw new Error('A database URL may not set `options`: the service pins each connection’s search_path itself (DATABASE_SCHEMA)');
  return {
    type: 'postgres',
    url,
    synchronize: false,
    migrationsRun: false, // run by runMigrations() under a lock, see migrate.ts
    migrations,
    migrationsTableName: 'typeorm_migrations',
    extra: { max: poolSize, options: searchPathOption(schema) },
  };
}
