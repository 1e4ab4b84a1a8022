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

  it('records the source currency it remembers, whichever way a transfer goes between two currencies', async () => {
    const dollars = await client.openWith(1_000, 'USD');
    const euros = await client.openWith(1_000, 'EUR');
    for (const [from, to] of [
      [dollars, euros],
      [euros, dollars],
    ]) {
      const learned = await client.transfer(from.id, to.id, 100);
      await client.settled(learned.id);
    }
    // Both remembered now (the loads of a refused credit, confirmed on the stored stream, would blur a count here).
    const lookup = t.app.get(AccountLookup);
    expect([await lookup.opened(dollars.id), await lookup.opened(euros.id)]).toEqual([
      { accountId: dollars.id, currency: 'USD' },
      { accountId: euros.id, currency: 'EUR' },
    ]);
    const usd = await client.transfer(dollars.id, euros.id, 100);
    const eur = await client.transfer(euros.id, dollars.id, 100);
    expect(await client.settled(usd.id)).toMatchObject({ currency: 'USD', status: 'failed', failureCode: 'ACCOUNT_CURRENCY_MISMATCH' });
    expect(await client.settled(eur.id)).toMatchObject({ currency: 'EUR', status: 'failed', failureCode: 'ACCOUNT_CURRENCY_MISMATCH' });
  });

  it('an account not found is looked up again every time, and found once another instance opened it', async () => {
    const source = await client.openWith(1_000);
    const missing = randomUUID();
    for (let attempt = 0; attempt < 2; attempt++) {
      loads.start();
      const refused = await t.http.post('/transfers').send({ fromAccountId: source.id, toAccountId: missing, amount: 100 });
      loads.stop();
      expect({ status: refused.status, code: refused.body.code }).toEqual({ status: 404, code: 'ACCOUNT_NOT_FOUND' });
      expect(loads.count).toBeGreaterThanOrEqual(1); // the target, read each time (nothing else runs on these accounts)
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
    // Accepted from the memory (a count of loads here would also see the process confirming its refusal).
    expect(await t.app.get(AccountLookup).opened(source.id)).toEqual({ accountId: source.id, currency: 'EUR' });
    const late = await client.transfer(source.id, target.id, 100);
    expect(await client.settled(late.id)).toMatchObject({ status: 'failed', failureCode: 'ACCOUNT_CLOSED' });
  });
});
