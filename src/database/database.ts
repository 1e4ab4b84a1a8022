import type { AppConfig } from '../config/app-config.js';
import { EmbeddedDatabase } from './embedded-database.js';

/** The PostgreSQL the service talks to: the one in DATABASE_URL, or an embedded one it runs itself. */
export interface Database {
  readonly url: string;
  readonly embedded: boolean;
  stop(): Promise<void>;
}

export async function openDatabase(
  config: AppConfig,
  log: (message: string) => void,
  options: { attachToRunning?: boolean } = {},
): Promise<Database> {
  if (config.databaseUrl) {
    return { url: config.databaseUrl, embedded: false, stop: async () => undefined };
  }
  const running = options.attachToRunning ? EmbeddedDatabase.urlOfRunning(config.embeddedDatabase) : undefined;
  if (running) return { url: running, embedded: true, stop: async () => undefined };
  const embedded = await EmbeddedDatabase.start({ ...config.embeddedDatabase, log });
  return { url: embedded.url, embedded: true, stop: () => embedded.stop() };
}
