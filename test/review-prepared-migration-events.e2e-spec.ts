import { afterEach, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import type { LedgerClient } from './support/ledger-client.js';
import { type AppWithConnection, startAppWithConnection } from './support/app-with-connection.js';
import type { TestApp } from './support/test-app.js';

// Review (prepared statements): a migration widening events.version to bigint while the service runs.
// A statement sent unnamed is analysed again and answers the new type; a prepared statement whose
// result columns change fails with 0A000 "cached plan must not change result type" on every
// connection that prepared it, on every call, until the connection goes. Fixed: such a failure renames
// the statement, so every connection parses it again (once per process), and a run outside a
// transaction is retried at once. (The appends RETURNING version were prepared before the review, so
// the command side failed on b1b48f2 too.)

let t: TestApp;
let ledger: LedgerClient;
let own: pg.Client;
let app: AppWithConnection | undefined;

async function start(): Promise<void> {
  // A small pool: every connection has prepared the statements before the migration.
  app = await startAppWithConnection({ DATABASE_POOL_SIZE: '2' });
  ({ t, ledger, own } = app);
}
afterEach(async () => {
  await app?.close();
});

async function historyAnswers(accountId: string): Promise<Array<{ status: number; body: unknown }>> {
  const answers: Array<{ status: number; body: unknown }> = [];
  for (let n = 0; n < 6; n++) {
    const response = await t.http.get(`/accounts/${accountId}/events`);
    answers.push({ status: response.status, body: response.status === 200 ? 'ok' : response.body });
  }
  return answers.filter((answer) => answer.status !== 200);
}

describe('a migration changing the type of a column of events while instances run', () => {
  it('widening version to bigint leaves an account’s event history readable', async () => {
    await start();
    const account = await ledger.openWith(1000);
    // Every connection of the (small) pools reads the stream once.
    await Promise.all(Array.from({ length: 6 }, () => t.http.get(`/accounts/${account.id}/events`)));
    await own.query('ALTER TABLE events ALTER COLUMN version TYPE bigint');
    expect(await historyAnswers(account.id)).toEqual([]);
  });

  it('changing recorded_at’s precision leaves deposits, transfers and the history working', async () => {
    await start();
    const account = await ledger.openWith(1000);
    const target = await ledger.open();
    const warm = await ledger.transfer(account.id, target.id, 1);
    await ledger.settled(warm.id);
    await Promise.all(Array.from({ length: 6 }, () => t.http.get(`/accounts/${account.id}/events`)));
    await own.query('ALTER TABLE events ALTER COLUMN recorded_at TYPE timestamptz(3)');

    for (let n = 0; n < 4; n++) expect((await ledger.deposit(account.id, 1)).status).toBe(200);
    const transfer = await ledger.transfer(account.id, target.id, 7);
    expect((await ledger.settled(transfer.id, 15_000)).status).toBe('completed');
    expect(await historyAnswers(account.id)).toEqual([]);
  });
});
