import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';

export default async function globalTeardown() {
  const database = globalThis.testDatabase;
  if (!database) return;
  await database.stop();
  await rm(dirname(database.dir), { recursive: true, force: true });
}
