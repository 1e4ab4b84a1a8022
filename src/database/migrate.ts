// `ledger migrate`: applies pending migrations as the owner (DATABASE_URL) and returns what it applied.
// Nothing else of the application starts: no Nest, no HTTP, no projection runner.
import { DataSource, type Migration } from 'typeorm';
import type { AppConfig } from '../config/app-config.js';
import { dataSourceOptions } from './data-source-options.js';
import { runMigrations } from './run-migrations.js';

export async function migrate(config: AppConfig, databaseUrl: string): Promise<Migration[]> {
  const dataSource = new DataSource(dataSourceOptions(databaseUrl, 2, config.databaseSchema));
  try {
    await dataSource.initialize();
    return await runMigrations(dataSource, config.databaseSchema);
  } finally {
    await dataSource.destroy().catch(() => undefined);
  }
}
