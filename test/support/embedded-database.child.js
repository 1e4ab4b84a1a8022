// Runs an embedded PostgreSQL in a separate Node process, so a test can kill that process the way a
// crash would (SIGKILL) and look at what is left behind. Uses the build that `npm test` makes first.
import { EmbeddedDatabase } from '../../dist/src/database/embedded-database.js';

const [dir, port] = process.argv.slice(2);
const database = await EmbeddedDatabase.start({ dir, port: Number(port), database: 'postgres' });
process.send?.({ ready: true, url: database.url });
process.on('SIGTERM', async () => {
  await database.stop();
  process.exit(0);
});
setInterval(() => undefined, 60_000);
