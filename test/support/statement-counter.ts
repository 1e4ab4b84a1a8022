import type pg from 'pg';
import type { DataSource } from 'typeorm';

const COUNTED = Symbol('statement-counter');

export interface StatementCounter {
  /** Statements matching the pattern sent since start() (or since creation). */
  readonly count: number;
  /** The texts counted, for a failure message. */
  readonly texts: readonly string[];
  start(): void;
  stop(): void;
}

/** A statement as a pool's connection was asked to send it. */
export interface SentStatement {
  readonly text: string;
  /** Set when it goes as a named (prepared) statement: parsed and planned once per connection. */
  readonly name?: string;
  readonly values: readonly unknown[];
}

/**
 * Calls `listener` with every statement a DataSource sends to PostgreSQL, on every connection its
 * pool lends out from now on (TypeORM queries and prepared statements alike): what the database is
 * actually asked, whatever code path asks it.
 */
export function watchStatements(dataSource: DataSource, listener: (statement: SentStatement) => void): void {
  const pool = (dataSource.driver as unknown as { master: pg.Pool }).master;
  const wrap = (client: pg.PoolClient & { [COUNTED]?: Array<(statement: SentStatement) => void> }) => {
    if (!client[COUNTED]) {
      const listeners: Array<(statement: SentStatement) => void> = [];
      client[COUNTED] = listeners;
      const original = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
        const config = args[0] as string | { text?: string; name?: string; values?: unknown[] };
        const statement: SentStatement =
          typeof config === 'string'
            ? { text: config, values: (args[1] as unknown[] | undefined) ?? [] }
            : { text: config?.text ?? '', name: config?.name, values: config?.values ?? (args[1] as unknown[] | undefined) ?? [] };
        for (const each of listeners) each(statement);
        return original(...args);
      };
    }
    client[COUNTED].push(listener);
  };
  const seen = new WeakSet<object>();
  pool.on('acquire', (client: pg.PoolClient) => {
    if (seen.has(client)) return;
    seen.add(client);
    wrap(client);
  });
}

/**
 * Counts the statements whose SQL matches `pattern` that a DataSource sends to PostgreSQL
 * (watchStatements). Counting starts at once; start() resets it.
 */
export function countStatements(dataSource: DataSource, pattern: RegExp): StatementCounter {
  const state = { counting: true, texts: [] as string[] };
  watchStatements(dataSource, ({ text }) => {
    if (state.counting && pattern.test(text)) state.texts.push(text.replace(/\s+/g, ' ').trim());
  });
  return {
    get count() {
      return state.texts.length;
    },
    get texts() {
      return state.texts;
    },
    start() {
      state.texts = [];
      state.counting = true;
    },
    stop() {
      state.counting = false;
    },
  };
}
