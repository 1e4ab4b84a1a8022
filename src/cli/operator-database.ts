import { type AppConfig, loadConfig, loadDotEnv } from '../config/app-config.js';
import { type Database, openDatabase } from '../database/database.js';

/** The configuration as the service reads it: `.env` of the working directory, then the environment. */
export function operatorConfig(): AppConfig {
  loadDotEnv();
  return loadConfig();
}

/**
 * The database a command works on: DATABASE_URL, like the service. In development without it, the
 * embedded server of `npm start` (attached to when the service runs, started for the command
 * otherwise), as the npm shortcuts always did. In production there is no embedded default: loadConfig
 * refuses a production configuration without DATABASE_URL (a command would otherwise migrate or
 * inspect a throwaway server and report success about a database that is not the service's).
 */
export async function operatorDatabase(config: AppConfig): Promise<Database> {
  // Messages about the embedded server go to stderr: stdout is the command's answer.
  return openDatabase(config, (message) => console.error(message), { attachToRunning: true });
}
