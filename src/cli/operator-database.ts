import { type AppConfig, ConfigError, loadConfig, loadDotEnv } from '../config/app-config.js';
import { type Database, openDatabase } from '../database/database.js';

/** The configuration as the service reads it: `.env` of the working directory, then the environment. */
export function operatorConfig(): AppConfig {
  loadDotEnv();
  return loadConfig();
}

/**
 * The database a command works on: DATABASE_URL, like the service. In development without it, the
 * embedded server of `npm start` (attached to when the service runs, started for the command
 * otherwise), as the npm shortcuts always did. In production there is no embedded default: a
 * command run without DATABASE_URL would otherwise migrate or inspect a throwaway server and report
 * success about a database that is not the service's.
 */
export async function operatorDatabase(config: AppConfig): Promise<Database> {
  if (!config.databaseUrl && config.production) {
    throw new ConfigError('DATABASE_URL is not set: in production (NODE_ENV=production) a command needs the database it works on');
  }
  // Messages about the embedded server go to stderr: stdout is the command's answer.
  return openDatabase(config, (message) => console.error(message), { attachToRunning: true });
}
