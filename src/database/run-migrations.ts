import type { DataSource, Migration } from 'typeorm';
import { migrations } from '../../migrations/index.js';
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

/**
 * The migrations this build knows that the database has not applied, read without changing
 * anything (TypeORM's own check creates its table first): all of them when the database was never
 * migrated. For MIGRATIONS_RUN=false, where a separate job migrates before the service starts.
 */
export async function pendingMigrations(dataSource: DataSource): Promise<string[]> {
  const known = migrations.map((migration) => new migration().name ?? migration.name);
  const [{ present }] = (await dataSource.query(`SELECT to_regclass('typeorm_migrations') IS NOT NULL AS present`)) as Array<{
    present: boolean;
  }>;
  if (!present) return known;
  const applied = new Set(
    ((await dataSource.query('SELECT name FROM typeorm_migrations')) as Array<{ name: string }>).map((row) => row.name),
  );
  return known.filter((name) => !applied.has(name));
}

/** MIGRATIONS_RUN=false and the database lacks migrations this build needs: the start is refused. */
export class PendingMigrationsError extends Error {
  constructor(pending: readonly string[]) {
    super(
      `${pending.length} migration(s) not applied (${pending.slice(0, 3).join(', ')}${pending.length > 3 ? ', …' : ''}) and MIGRATIONS_RUN=false: run the migrations first (npm run migration:run, or the deployment's migration job), or set MIGRATIONS_RUN=true`,
    );
    this.name = 'PendingMigrationsError';
  }
}
