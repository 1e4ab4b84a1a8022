/**
 * The schema that holds the ledger's tables (DATABASE_SCHEMA), pinned as the search_path of every
 * connection the service opens, and the schema where rebuilds write their fresh copies.
 *
 * A plain lowercase identifier only: it goes into a connection's startup options and into SQL
 * without quoting, so nothing else may get through (no quotes, spaces, commas or backslashes that
 * could add options or schemas). At most 55 characters, so that `<schema>_rebuild` still fits
 * PostgreSQL's 63; `pg_` is reserved by PostgreSQL.
 */
export const SCHEMA_NAME = /^(?!pg_)[a-z_][a-z0-9_]{0,54}$/;

export const DEFAULT_SCHEMA = 'public';

export function assertSchemaName(schema: string, source = 'the schema'): string {
  if (!SCHEMA_NAME.test(schema)) {
    throw new Error(
      `${source} must be a lowercase identifier (a-z, 0-9, _; at most 55 characters, not starting with pg_ or a digit), got "${schema}"`,
    );
  }
  return schema;
}

/** Where a rebuild writes its copies of the tables of `schema` (created by the migrations). */
export function rebuildSchemaOf(schema: string): string {
  return `${schema}_rebuild`;
}

/**
 * The startup option that pins a connection's search_path to `schema` alone: no `"$user"` schema
 * that someone else could create comes first, and nothing a session could change later is needed.
 */
export function searchPathOption(schema: string): string {
  return `-c search_path=${assertSchemaName(schema)}`;
}

/**
 * Whether a connection URL carries its own startup `options`: pg lets those replace the pinned
 * search_path, so such a URL is refused.
 */
export function urlSetsOptions(url: string): boolean {
  try {
    return new URL(url).searchParams.has('options');
  } catch {
    return false; // not a URL: the driver refuses it with its own message
  }
}
