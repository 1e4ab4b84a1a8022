import { type AppConfig, ConfigError } from '../config/app-config.js';
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
  if (config.production) {
    // The embedded server keeps its data inside the container: a pod restart would lose the ledger.
    throw new ConfigError('DATABASE_URL must be set in production (NODE_ENV=production); the embedded PostgreSQL is for development only');
  }
  const running = options.attachToRunning ? EmbeddedDatabase.urlOfRunning(config.embeddedDatabase) : undefined;
  if (running) return { url: running, embedded: true, stop: async () => undefined };
  const embedded = await EmbeddedDatabase.start({ ...config.embeddedDatabase, log });
  return { url: embedded.url, embedded: true, stop: () => embedded.stop() };
}
