import type { DataSource, Migration } from 'typeorm';
import { DEFAULT_SCHEMA, assertSchemaName } from './schema-name.js';

/** Any constant works; it only has to be the same for every instance of the service. */
const MIGRATION_LOCK_KEY = 7_345_001;

/**
 * Runs pending migrations, each in its own transaction, while holding an advisory lock so that two
 * instances starting together do not both try to apply the same migration. `schema` is the one the
 * DataSource's connections are pinned to: created first if missing (only then: CREATE SCHEMA checks
 * the privilege even with IF NOT EXISTS, and an owner who was given the schema may lack it).
 */
export async function runMigrations(dataSource: DataSource, schema = DEFAULT_SCHEMA): Promise<Migration[]> {
  const lock = dataSource.createQueryRunner();
  await lock.connect();
  try {
    await lock.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    const [{ missing }] = (await lock.query('SELECT to_regnamespace($1) IS NULL AS missing', [assertSchemaName(schema)])) as Array<{
      missing: boolean;
    }>;
    if (missing) await lock.query(`CREATE SCHEMA ${schema}`);
    return await dataSource.runMigrations({ transaction: 'each' });
  } finally {
    await lock.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await lock.release();
  }
}
