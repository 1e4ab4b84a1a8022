import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { accountStreamId } from '../src/accounts/account.js';
import { AccountNotFoundError, InsufficientFundsError, TransferInFlightError } from '../src/accounts/account.errors.js';
import { AccountClosed, AccountOpened, MoneyDeposited, MoneyWithdrawn, TransferDebited } from '../src/accounts/account.events.js';
import { AccountsModule } from '../src/accounts/accounts.module.js';
import { CloseAccount } from '../src/accounts/close-account/close-account.command.js';
import { DepositMoney } from '../src/accounts/deposit-money/deposit-money.command.js';
import { OpenAccount } from '../src/accounts/open-account/open-account.command.js';
import { DebitForTransfer } from '../src/accounts/transfer-legs/transfer-leg.commands.js';
import { WithdrawMoney } from '../src/accounts/withdraw-money/withdraw-money.command.js';
import { WrongExpectedVersionError } from '../src/event-sourcing/index.js';
import { commandSpec } from '../src/event-sourcing/testing/command-spec.js';
import { type FeatureModule, startFeatureModule } from './support/feature-module.js';

// The account commands through the real CommandBus, handlers, CommandRunner and EventStore of
// AccountsModule on a migrated database: what they append (read back from the store, with versions),
// or the typed refusal with nothing appended.

let feature: FeatureModule;
beforeAll(async () => {
  feature = await startFeatureModule([AccountsModule]);
});
afterAll(() => feature?.close());

const spec = commandSpec(() => feature.moduleRef);

/** A fresh account per test: the database is shared by the tests of this file. */
function account() {
  const id = randomUUID();
  return {
    id,
    stream: accountStreamId(id),
    opened: new AccountOpened({ accountId: id, ownerName: 'Ada', currency: 'EUR' }),
    deposited: (amount: number, balanceAfter: number, reference: string | null = null) =>
      new MoneyDeposited({ accountId: id, amount, balanceAfter, reference }),
    withdrawn: (amount: number, balanceAfter: number) => new MoneyWithdrawn({ accountId: id, amount, balanceAfter }),
  };
}

describe('account commands against the store', () => {
  it('open: AccountOpened at version 1 of a new stream', async () => {
    const a = account();
    const result = await spec.when(new OpenAccount(a.id, 'Ada', 'EUR')).then([{ streamId: a.stream, version: 1, data: a.opened }]);
    expect(result).toMatchObject({ streamId: a.stream, version: 1 });
  });

  it('deposit: appended after the history, with the balance after it and the reference', async () => {
    const a = account();
    await spec
      .given(a.stream, [a.opened, a.deposited(100, 100)])
      .when(new DepositMoney(a.id, 50, undefined, 'rent'))
      .then([{ streamId: a.stream, version: 3, data: a.deposited(50, 150, 'rent') }]);
  });

  it('deposit to an account that does not exist: AccountNotFoundError, nothing appended', async () => {
    const a = account();
    await spec.when(new DepositMoney(a.id, 50)).thenThrows(AccountNotFoundError);
  });

  it('withdraw: appended with the balance after it', async () => {
    const a = account();
    await spec
      .given(a.stream, [a.opened, a.deposited(100, 100)])
      .when(new WithdrawMoney(a.id, 30))
      .then([{ streamId: a.stream, version: 3, data: a.withdrawn(30, 70) }]);
  });

  it('withdraw beyond the balance: InsufficientFundsError with the balance, nothing appended', async () => {
    const a = account();
    await spec
      .given(a.stream, [a.opened, a.deposited(100, 100), a.withdrawn(60, 40)])
      .when(new WithdrawMoney(a.id, 41))
      .thenThrows(InsufficientFundsError, (error) => expect(error.details).toEqual({ accountId: a.id, balance: 40, requested: 41 }));
  });

  it('withdraw at a version that is no longer current (If-Match): WrongExpectedVersionError, nothing appended', async () => {
    const a = account();
    await spec
      .given(a.stream, [a.opened, a.deposited(100, 100)])
      .when(new WithdrawMoney(a.id, 10, 1))
      .thenThrows(WrongExpectedVersionError);
  });

  it('close with money in flight (a transfer debited, not yet settled): TransferInFlightError, nothing appended', async () => {
    const a = account();
    const debited = new TransferDebited({ accountId: a.id, transferId: randomUUID(), amount: 100, balanceAfter: 0 });
    await spec
      .given(a.stream, [a.opened, a.deposited(100, 100), debited])
      .when(new CloseAccount(a.id))
      .thenThrows(TransferInFlightError, (error) => expect(error.details).toEqual({ accountId: a.id, inFlight: 100 }));
  });

  it('debit for a transfer: TransferDebited with the transfer id; sent again for the same transfer, nothing appended and no error', async () => {
    const a = account();
    const transferId = randomUUID();
    const debited = new TransferDebited({ accountId: a.id, transferId, amount: 40, balanceAfter: 60 });
    await spec
      .given(a.stream, [a.opened, a.deposited(100, 100)])
      .when(new DebitForTransfer(a.id, transferId, 40, 'EUR'))
      .then([{ streamId: a.stream, version: 3, data: debited }]);
    const b = account();
    const result = await spec
      // eslint-disable-next-line @typescript-eslint/no-misused-spread -- the event's own fields, copied into a new event of the same class
      .given(b.stream, [b.opened, b.deposited(100, 100), new TransferDebited({ ...debited, accountId: b.id })])
      .when(new DebitForTransfer(b.id, transferId, 40, 'EUR'))
      .then([]);
    expect(result).toMatchObject({ streamId: b.stream, version: 3 });
  });

  it('close an emptied account: AccountClosed, and only in its own stream', async () => {
    const a = account();
    const b = account();
    await spec
      .given(a.stream, [a.opened, a.deposited(100, 100), a.withdrawn(100, 0)])
      .given(b.stream, [b.opened])
      .when(new CloseAccount(a.id))
      .then([{ streamId: a.stream, version: 4, data: new AccountClosed({ accountId: a.id }) }]);
  });
});
