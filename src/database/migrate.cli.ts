// `npm run migration:run`: applies pending migrations to DATABASE_URL (or to the embedded database,
// started for the occasion and stopped afterwards), then exits.
import { DataSource } from 'typeorm';
import { loadConfig, loadDotEnv } from '../config/app-config.js';
import { dataSourceOptions } from './data-source-options.js';
import { openDatabase } from './database.js';
import { runMigrations } from './run-migrations.js';

async function main(): Promise<void> {
  loadDotEnv();
  const config = loadConfig();
  const database = await openDatabase(config, (message) => console.log(message), { attachToRunning: true });
  const dataSource = new DataSource(dataSourceOptions(database.url, 2, config.databaseSchema));
  try {
    await dataSource.initialize();
    const applied = await runMigrations(dataSource, config.databaseSchema);
    console.log(applied.length ? `Applied: ${applied.map((migration) => migration.name).join(', ')}` : 'No pending migrations');
  } finally {
    await dataSource.destroy().catch(() => undefined);
    await database.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
