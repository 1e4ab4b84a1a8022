import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import type { LedgerClient } from './support/ledger-client.js';
import { type AppWithConnection, startAppWithConnection } from './support/app-with-connection.js';
import { rows } from './support/projection-fixtures.js';

// Review (prepared statements): a migration run while the service runs, turning transfers.status into
// an enum. An unnamed UPDATE ... SET status = $2 infers $2 as the enum and goes on working; a
// prepared one keeps the parameter type it was parsed with (text), and every later execution on a
// connection that prepared it fails (42804) until the process restarts. Fixed: the failure renames
// the statement, and the batch's next attempt parses it again with the enum's type.

let ledger: LedgerClient;
let own: pg.Client;
let app: AppWithConnection | undefined;

beforeAll(async () => {
  // A small pool: every connection the transfers projection uses has prepared its statements before the migration.
  app = await startAppWithConnection({ DATABASE_POOL_SIZE: '2' });
  ({ ledger, own } = app);
});
afterAll(async () => {
  await app?.close();
});

describe('a migration making transfers.status an enum while instances run', () => {
  it('leaves transfers settling and visible as settled', async () => {
    const from = await ledger.openWith(1000);
    const to = await ledger.open();
    // Warm up: every connection of the projector pool that ran the transfer summary's statements holds them.
    for (let n = 0; n < 8; n++) {
      const transfer = await ledger.transfer(from.id, to.id, 10 + n);
      expect((await ledger.settled(transfer.id)).status).toBe('completed');
    }

    const [{ constraint }] = await rows<{ constraint: string }>(
      own,
      `SELECT conname AS constraint FROM pg_constraint
       WHERE conrelid = 'transfers'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%status%'`,
    );
    await own.query('BEGIN');
    await own.query(`CREATE TYPE transfer_status AS ENUM ('pending', 'completed', 'failed')`);
    await own.query(`ALTER TABLE transfers DROP CONSTRAINT "${constraint}"`);
    await own.query(`ALTER TABLE transfers ALTER COLUMN status TYPE transfer_status USING status::transfer_status`);
    await own.query('COMMIT');

    for (let n = 0; n < 3; n++) {
      const transfer = await ledger.transfer(from.id, to.id, 20 + n);
      let settled: Record<string, any>;
      try {
        settled = await ledger.settled(transfer.id, 10_000);
      } catch (error) {
        const failures = await rows<{ name: string; status: string; attempts: number; last_error: string | null }>(
          own,
          'SELECT name, status, attempts, last_error FROM projection_checkpoints WHERE last_error IS NOT NULL',
        );
        throw new Error(`${(error as Error).message}; projection failures: ${JSON.stringify(failures)}`, { cause: error });
      }
      expect(settled.status).toBe('completed');
    }
  });
});
