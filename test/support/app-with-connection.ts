import pg from 'pg';
import { LedgerClient } from './ledger-client.js';
import { type TestApp, startTestApp } from './test-app.js';

export interface AppWithConnection {
  readonly t: TestApp;
  readonly ledger: LedgerClient;
  /** A plain connection of the test's own to the service's database: outside its pools, so nothing the test asks is counted or watched as the service's. */
  readonly own: pg.Client;
  /** Ends the connection, then stops the service. */
  close(): Promise<void>;
}

/** The service as main.ts builds it (startTestApp, with `env`), a LedgerClient on it, and a connection of the test's own. */
export async function startAppWithConnection(env: Record<string, string> = {}): Promise<AppWithConnection> {
  const t = await startTestApp(env);
  const own = new pg.Client(t.database.url);
  await own.connect();
  return {
    t,
    ledger: new LedgerClient(t),
    own,
    async close() {
      await own.end();
      await t.close();
    },
  };
}
