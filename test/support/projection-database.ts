import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source-options.js';
import { runMigrations } from '../../src/database/run-migrations.js';
import { type TestDatabase, createTestDatabase } from './test-database.js';

export interface ProjectionDatabase {
  readonly dataSource: DataSource;
  readonly database: TestDatabase;
  close(): Promise<void>;
}

/**
 * What projectionSpec (src/event-sourcing/testing) needs: a DataSource on a fresh database of the
 * test server with the real migrations applied (tables, grants, roles). The kit takes the DataSource,
 * so it never imports from test/.
 */
export async function startProjectionDatabase(): Promise<ProjectionDatabase> {
  const database = await createTestDatabase();
  const dataSource = await new DataSource(dataSourceOptions(database.url, 4)).initialize();
  try {
    await runMigrations(dataSource);
  } catch (error) {
    await dataSource.destroy();
    await database.drop();
    throw error;
  }
  return {
    dataSource,
    database,
    async close() {
      await dataSource.destroy();
      await database.drop();
    },
  };
}
