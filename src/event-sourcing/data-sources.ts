/**
 * Each side of the service talks to PostgreSQL through a DataSource of its own, so each can connect
 * as a role with only the privileges it needs, and the query side can read from a replica:
 * - the command side is TypeORM's default DataSource (inject `DataSource`): appends, aggregate loads,
 *   snapshots, idempotency keys;
 * - QUERY_DATA_SOURCE: read tables, the event log's history and feeds, read-your-writes checks;
 * - PROJECTOR_DATA_SOURCE: the projection engine (reads events, writes read tables and checkpoints)
 *   and its LISTEN connection.
 * The application provides both tokens (see DatabaseModule); they may be the default DataSource.
 */
export const QUERY_DATA_SOURCE = Symbol('QUERY_DATA_SOURCE');
export const PROJECTOR_DATA_SOURCE = Symbol('PROJECTOR_DATA_SOURCE');
