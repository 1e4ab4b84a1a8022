import pg from 'pg';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source-options.js';
import { runMigrations } from '../../src/database/run-migrations.js';
import type { Checkpoint } from '../../src/event-sourcing/recorded-event.js';
import { type TestDatabase, createTestDatabase } from './test-database.js';

/** Where the checkpoint rows seeded below stand, and where a batch moves them. */
export const FROM: Checkpoint = { transactionId: '0', position: 0 };
export const TO: Checkpoint = { transactionId: '12345', position: 7 };

/** A migrated throwaway database, a DataSource on it (pool of `poolSize`) and an admin client. */
export interface MigratedDatabase {
  readonly database: TestDatabase;
  readonly dataSource: DataSource;
  readonly admin: pg.Client;
  close(): Promise<void>;
}

export async function migratedDatabase(poolSize: number): Promise<MigratedDatabase> {
  const database = await createTestDatabase();
  const migrator = await new DataSource(dataSourceOptions(database.url, 2)).initialize();
  await runMigrations(migrator);
  await migrator.destroy();
  const dataSource = await new DataSource(dataSourceOptions(database.url, poolSize)).initialize();
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  return {
    database,
    dataSource,
    admin,
    async close() {
      await admin.end();
      await dataSource.destroy();
      await database.drop();
    },
  };
}

/** A checkpoint row at FROM, its lease held by 'holder' with `token` for an hour. */
export async function seedHeldRow(admin: pg.Client, name: string, token = '3'): Promise<void> {
  await admin.query('DELETE FROM projection_checkpoints WHERE name = $1', [name]);
  await admin.query(
    `INSERT INTO projection_checkpoints (name, projection, lease_owner, lease_token, lease_expires_at)
     VALUES ($1, $1, 'holder', $2, clock_timestamp() + interval '1 hour')`,
    [name, token],
  );
}

export async function checkpointPosition(admin: pg.Client, name: string): Promise<number> {
  return Number((await admin.query('SELECT position FROM projection_checkpoints WHERE name = $1', [name])).rows[0].position);
}
