import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import type { LedgerClient } from './support/ledger-client.js';
import { type AppWithConnection, startAppWithConnection } from './support/app-with-connection.js';
import type { TestApp } from './support/test-app.js';

// Review 2 of 5adcd77: POST /transfers now decides on its new stream unread (newStream). Concurrent
// and repeated requests with one Idempotency-Key must still record one transfer and move money once.

let t: TestApp;
let ledger: LedgerClient;
let own: pg.Client;
let app: AppWithConnection | undefined;

beforeAll(async () => {
  app = await startAppWithConnection();
  ({ t, ledger, own } = app);
});
afterAll(async () => {
  await app?.close();
});

describe('POST /transfers with one Idempotency-Key, concurrently and again', () => {
  it('records one transfer and moves the money once', async () => {
    const from = await ledger.openWith(1000);
    const to = await ledger.open();
    const body = { fromAccountId: from.id, toAccountId: to.id, amount: 70 };
    const send = () => t.http.post('/transfers').set('Idempotency-Key', 'review2-key-1').send(body);
    const answers = await Promise.all(Array.from({ length: 8 }, send));
    const accepted = answers.filter((answer) => answer.status === 202);
    expect(answers.every((answer) => answer.status === 202 || answer.status === 409)).toBe(true);
    expect(new Set(accepted.map((answer) => answer.body.id)).size).toBe(1);
    const again = await send();
    expect(again.status).toBe(202);
    const id = again.body.id as string;
    expect((await ledger.settled(id)).status).toBe('completed');
    const { rows } = await own.query(
      `SELECT count(*)::int AS n FROM events WHERE type LIKE '%TransferRequested%' AND data->>'fromAccountId' = $1`,
      [from.id],
    );
    expect(rows[0].n).toBe(1);
    expect((await ledger.account(from.id)).balance).toBe(930);
    expect((await ledger.account(to.id)).balance).toBe(70);
  });
});
