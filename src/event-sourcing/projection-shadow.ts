import type { EntityManager } from 'typeorm';
import type { Projection } from './projection.js';
import { sql } from './sql.js';

const quote = (identifier: string) => `"${identifier.replaceAll('"', '""')}"`;

/**
 * Where a rebuild writes a fresh copy of a projection's tables: a schema of its own. Handlers use
 * unqualified table names, so a transaction-local search_path is all it takes to point them at the
 * copy. The live tables keep serving queries until the copy replaces their content in one
 * transaction.
 */
export class ShadowTables {
  readonly schema: string;

  constructor(
    private readonly projection: Projection,
    /** The schema of the live tables (the connection's current_schema()). */
    private readonly liveSchema: string,
  ) {
    this.schema = `rebuild_${projection.name.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}`;
  }

  static async forProjection(manager: EntityManager, projection: Projection): Promise<ShadowTables> {
    const { rows } = await sql<{ schema: string }>(manager, 'SELECT current_schema() AS schema');
    return new ShadowTables(projection, rows[0].schema);
  }

  /** Empty copies of the live tables: same columns, defaults, constraints and indexes. */
  async create(manager: EntityManager): Promise<void> {
    await this.drop(manager);
    await sql(manager, `CREATE SCHEMA ${quote(this.schema)}`);
    for (const table of this.projection.tables) {
      await sql(manager, `CREATE TABLE ${this.shadow(table)} (LIKE ${this.live(table)} INCLUDING ALL)`);
    }
  }

  /** Until the transaction ends, the projection's handlers write to the copies. */
  async use(manager: EntityManager): Promise<void> {
    await sql(manager, `SELECT set_config('search_path', $1, true)`, [`${quote(this.schema)}, ${quote(this.liveSchema)}`]);
  }

  /**
   * Replaces the live tables' content with the copies', then drops them. DELETE rather than TRUNCATE:
   * readers keep seeing the old rows, without waiting, until the transaction commits; the live tables
   * keep their names, indexes and grants.
   */
  async replaceLive(manager: EntityManager): Promise<void> {
    for (const table of this.projection.tables) {
      // Generated columns cannot be written (they are computed again); identity columns are copied
      // as they are (OVERRIDING SYSTEM VALUE) and their sequence moved past the copied values.
      const { rows: columns } = await sql<{ name: string; identity: boolean }>(
        manager,
        `SELECT attname AS name, attidentity <> '' AS identity FROM pg_attribute
         WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
         ORDER BY attnum`,
        [this.live(table)],
      );
      const list = columns.map((column) => quote(column.name)).join(', ');
      await sql(manager, `DELETE FROM ${this.live(table)}`);
      await sql(manager, `INSERT INTO ${this.live(table)} (${list}) OVERRIDING SYSTEM VALUE SELECT ${list} FROM ${this.shadow(table)}`);
      for (const column of columns.filter((candidate) => candidate.identity)) {
        await sql(
          manager,
          `SELECT setval(pg_get_serial_sequence($1, $2), coalesce((SELECT max(${quote(column.name)}) FROM ${this.live(table)}), 0) + 1, false)`,
          [this.live(table), column.name],
        );
      }
    }
    await this.drop(manager);
  }

  async drop(manager: EntityManager): Promise<void> {
    await sql(manager, `DROP SCHEMA IF EXISTS ${quote(this.schema)} CASCADE`);
  }

  /** Qualified names of the live tables, for LOCK TABLE. */
  liveTables(): string {
    return this.projection.tables.map((table) => this.live(table)).join(', ');
  }

  private live(table: string): string {
    return `${quote(this.liveSchema)}.${quote(table)}`;
  }

  private shadow(table: string): string {
    return `${quote(this.schema)}.${quote(table)}`;
  }
}
