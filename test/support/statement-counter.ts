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

/**
 * Counts the statements whose SQL matches `pattern` that a DataSource sends to PostgreSQL, on every
 * connection its pool lends out (TypeORM queries and prepared statements alike): what the database
 * is actually asked, whatever code path asks it. Counting starts at once; start() resets it.
 */
export function countStatements(dataSource: DataSource, pattern: RegExp): StatementCounter {
  const pool = (dataSource.driver as unknown as { master: pg.Pool }).master;
  const state = { counting: true, texts: [] as string[] };
  const wrap = (client: pg.PoolClient & { [COUNTED]?: Array<(text: string) => void> }) => {
    if (!client[COUNTED]) {
      const listeners: Array<(text: string) => void> = [];
      client[COUNTED] = listeners;
      const original = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
        const config = args[0] as string | { text?: string };
        const text = typeof config === 'string' ? config : (config?.text ?? '');
        for (const listener of listeners) listener(text);
        return original(...args);
      };
    }
    client[COUNTED].push((text) => {
      if (state.counting && pattern.test(text)) state.texts.push(text.replace(/\s+/g, ' ').trim());
    });
  };
  const seen = new WeakSet<object>();
  pool.on('acquire', (client: pg.PoolClient) => {
    if (seen.has(client)) return;
    seen.add(client);
    wrap(client);
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
