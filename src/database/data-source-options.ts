import type { DataSourceOptions } from 'typeorm';
import { migrations } from '../../migrations/index.js';

/** TypeORM settings shared by the application and the migration command. Never `synchronize`. */
export function dataSourceOptions(url: string, poolSize: number): DataSourceOptions {
  return {
    type: 'postgres',
    url,
    synchronize: false,
    migrationsRun: false, // run by runMigrations() under a lock, see migrate.ts
    migrations,
    migrationsTableName: 'typeorm_migrations',
    extra: { max: poolSize },
  };
}
