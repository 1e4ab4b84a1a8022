// Plain JavaScript because Jest loads global setup outside its module mapping; it uses the compiled
// EmbeddedDatabase, which `npm test` builds first (tsc) so it is never stale.
import { chmodSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedDatabase } from '../../dist/src/database/embedded-database.js';

/**
 * Starts one embedded PostgreSQL for the whole run, unless TEST_DATABASE_URL points at a server
 * already (CI runs the suite a second time against Debian's PostgreSQL that way). Test files each
 * create their own database on it (see test-database.ts), so they can run in parallel.
 */
export default async function globalSetup() {
  if (process.env.TEST_DATABASE_URL) return;
  const parent = mkdtempSync(join(tmpdir(), 'ledger-test-'));
  chmodSync(parent, 0o755); // as root, the server runs as user "postgres", which must enter it
  const dir = join(parent, 'postgres');
  const database = await EmbeddedDatabase.start({ dir, port: await freePort(), database: 'postgres' });
  globalThis.testDatabase = database;
  process.env.TEST_DATABASE_URL = database.url;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
