// `npm run openapi` writes openapi.json: the document the service serves at /docs-json, from the app
// built exactly as main.ts builds it (createApp), in canonical form (see openapi-document.ts). Then
// the npm script regenerates the typed client from it (`npm run client:generate`).
// Building the app connects to PostgreSQL (the modules open their pools and check the schema when
// they start), so this runs a throwaway embedded server in a temporary directory, removed after: it
// never touches DATABASE_URL or the development database. Configuration is the default one (no
// environment, no .env): the committed document must not depend on who ran the command.
import 'reflect-metadata';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../src/app.factory.js';
import { loadConfig } from '../src/config/app-config.js';
import { EmbeddedDatabase } from '../src/database/embedded-database.js';
import { freePort } from '../bench/bench-database.js';
import { OPENAPI_FILE, canonicalJson, fetchServedDocument } from './openapi-document.js';

const parent = mkdtempSync(join(tmpdir(), 'ledger-openapi-'));
chmodSync(parent, 0o755); // as root, the server runs as user "postgres", which must enter it
let database: EmbeddedDatabase | undefined;
try {
  database = await EmbeddedDatabase.start({ dir: join(parent, 'postgres'), port: await freePort() });
  const app = await createApp(loadConfig({}), database.url, { logger: false });
  try {
    await app.listen(0, '127.0.0.1');
    const document = await fetchServedDocument((await app.getUrl()).replace('[::1]', '127.0.0.1'));
    writeFileSync(OPENAPI_FILE, canonicalJson(document));
    console.log(`Wrote ${OPENAPI_FILE} (${Object.keys((document as { paths: object }).paths).length} paths)`);
  } finally {
    await app.close();
  }
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await database?.stop();
  rmSync(parent, { recursive: true, force: true });
}
