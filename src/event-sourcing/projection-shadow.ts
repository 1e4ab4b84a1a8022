import type { EntityManager } from 'typeorm';
import type { Projection } from './projection.js';
import { sql } from './sql.js';

const quote = (identifier: string) => `"${identifier.replaceAll('"', '""')}"`;

/**
 * Where a rebuild writes a fresh copy of a projection's tables: tables of the same names in the
 * rebuild schema `<live schema>_rebuild`, which the migrations create (owned by the owner; the
 * projector role may only create, use and drop tables in it: no role but the owner creates schemas).
 * Handlers use unqualified table names, so a transaction-local search_path with the rebuild schema
 * first is all it takes to point them at the copy. The live tables keep serving queries until the
 * copy replaces their content in one transaction.
 *
 * Two projections may rebuild at once in the one schema: their copies cannot collide because no two
 * projections own the same table (the ProjectionRegistry refuses it at start), and a projection's
 * handlers write only its own tables.
 */
/** The group role of projector logins (migrations/…011): rebuild copies belong to it. */
const PROJECTOR_ROLE = 'ledger_projector';

export class ShadowTables {
  readonly schema: string;

  constructor(
    private readonly projection: Projection,
    /** The schema of the live tables (the connection's current_schema(), pinned by its search_path). */
    private readonly liveSchema: string,
  ) {
    this.schema = `${liveSchema}_rebuild`;
  }

  static async forProjection(manager: EntityManager, projection: Projection): Promise<ShadowTables> {
    const { rows } = await sql<{ schema: string | null }>(manager, 'SELECT current_schema() AS schema');
    if (!rows[0].schema) throw new Error('The connection has no current schema (its search_path names no existing schema)');
    return new ShadowTables(projection, rows[0].schema);
  }

  /** Empty copies of the live tables: same columns, defaults, constraints and indexes. */
  async create(manager: EntityManager): Promise<void> {
    await this.drop(manager);
    // Owned by the group role, not by this login: a copy left behind by another projector login
    // (another instance, a rotated credential) can then be dropped or written by this one. A copy
    // owned by one login blocked every later rebuild of the projection (found in review).
    const asGroup = await this.canActAsProjectorRole(manager);
    if (asGroup) await sql(manager, `SET LOCAL ROLE ${PROJECTOR_ROLE}`);
    for (const table of this.projection.tables) {
      await sql(manager, `CREATE TABLE ${this.shadow(table)} (LIKE ${this.live(table)} INCLUDING ALL)`);
    }
    if (asGroup) await sql(manager, 'RESET ROLE');
  }

  private async canActAsProjectorRole(manager: EntityManager): Promise<boolean> {
    const { rows } = await sql<{ member: boolean }>(
      manager,
      // A superuser (the owner, in development) counts as a member of every role but keeps its copies:
      // the group may lack rights on a table only the owner was ever given.
      `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AND pg_has_role(current_user, $1, 'MEMBER')
              AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS member`,
      [PROJECTOR_ROLE],
    );
    return rows[0].member;
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
    for (const table of this.projection.tables) await sql(manager, `DROP TABLE IF EXISTS ${this.shadow(table)}`);
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
