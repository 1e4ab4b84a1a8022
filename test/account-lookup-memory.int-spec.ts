import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { CommandBus } from '@nestjs/cqrs';
import { AccountLookup } from '../src/accounts/index.js';
import { OpenAccount } from '../src/accounts/open-account/open-account.command.js';
import type { LedgerClient } from './support/ledger-client.js';
import { foldLedger } from './support/ledger-fold.js';
import type { StatementCounter } from './support/statement-counter.js';
import type { TestApp } from './support/test-app.js';
import { twoInstancesCountingAccountLoads } from './support/two-instances.js';

// A transfer request checks that both accounts exist and takes the source's currency (AccountLookup).
// Those facts never change once an account is opened, so a process remembers them: what must hold:
// - a request between accounts this process looked up before reads neither (failed before: one
//   snapshot lookup and one read of the events per account, on every request);
// - an account not found is never remembered: opened a moment later by another instance, it is found;
// - what does change is not taken from the memory: a remembered account closed since is refused by
//   the transfer process, on the stored stream, as before.

let t: TestApp;
let other: TestApp;
let client: LedgerClient;
let loads: StatementCounter;
const instances = twoInstancesCountingAccountLoads();
beforeAll(() => void ({ t, other, client, loads } = instances));

describe('the accounts of a transfer request', () => {
  it('are read the first time only: a second request between the same accounts reads neither', async () => {
    const source = await client.openWith(1_000);
    const target = await client.openWith(0);
    const first = await client.transfer(source.id, target.id, 300);
    expect((await client.settled(first.id)).status).toBe('completed');
    loads.start();
    const second = await client.transfer(source.id, target.id, 200);
    loads.stop();
    expect({ loads: loads.count, texts: loads.texts }).toEqual({ loads: 0, texts: [] });
    expect(await client.settled(second.id)).toMatchObject({ status: 'completed', currency: 'EUR' });
    const ledger = await foldLedger(t.dataSource);
    expect([ledger.accounts.get(source.id)!.balance, ledger.accounts.get(target.id)!.balance]).toEqual([500, 500]);
  });

  it('an account not found is looked up again every time, and found once another instance opened it', async () => {
    const source = await client.openWith(1_000);
    const missing = randomUUID();
    for (let attempt = 0; attempt < 2; attempt++) {
      loads.start();
      const refused = await t.http.post('/transfers').send({ fromAccountId: source.id, toAccountId: missing, amount: 100 });
      loads.stop();
      expect({ status: refused.status, code: refused.body.code }).toEqual({ status: 404, code: 'ACCOUNT_NOT_FOUND' });
      expect(loads.texts.filter((text) => text.length > 0).length).toBeGreaterThanOrEqual(1); // the target, read each time
    }
    expect(await t.app.get(AccountLookup).opened(missing)).toBeUndefined();
    await other.app.get(CommandBus).execute(new OpenAccount(missing, 'Opened elsewhere', 'EUR'));
    expect(await t.app.get(AccountLookup).opened(missing)).toEqual({ accountId: missing, currency: 'EUR' });
    const accepted = await client.transfer(source.id, missing, 100);
    expect((await client.settled(accepted.id)).status).toBe('completed');
  });

  it('a remembered account closed since is still refused, by the transfer process on the stored stream', async () => {
    const source = await client.openWith(0);
    const target = await client.openWith(0);
    const learned = await client.transfer(source.id, target.id, 100); // remembers both; fails for funds
    expect((await client.settled(learned.id)).status).toBe('failed');
    expect((await client.close(source.id)).status).toBe(200);
    loads.start();
    const late = await client.transfer(source.id, target.id, 100);
    loads.stop();
    expect(loads.count).toBe(0); // accepted from the memory: it exists, in EUR
    expect(await client.settled(late.id)).toMatchObject({ status: 'failed', failureCode: 'ACCOUNT_CLOSED' });
  });
});
