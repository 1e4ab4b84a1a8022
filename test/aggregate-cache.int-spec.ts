// The command runner's aggregate cache (issue 14): a command on a stream this process appended to last
// decides on the state it folded then, without reading the stream again. Every test here makes the
// cache stale on purpose — another instance's writes, simulated by appending through the EventStore
// directly — and checks that no decision is taken on stale state: appends land at the stored version
// with the stored balance, and refusals and version mismatches are only ever answered on the stream
// as stored.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { accountStreamId } from '../src/accounts/account.js';
import { InsufficientFundsError } from '../src/accounts/account.errors.js';
import { AccountOpened, MoneyDeposited, MoneyWithdrawn } from '../src/accounts/account.events.js';
import { AccountsModule } from '../src/accounts/accounts.module.js';
import { DepositMoney } from '../src/accounts/deposit-money/deposit-money.command.js';
import { WithdrawMoney } from '../src/accounts/withdraw-money/withdraw-money.command.js';
import { DebitForTransfer, SettleTransfer } from '../src/accounts/transfer-legs/transfer-leg.commands.js';
import { accountDecider } from '../src/accounts/account.js';
import { CommandBus } from '@nestjs/cqrs';
import { AggregateLoader, type AppendResult, EventStore, NO_STREAM, WrongExpectedVersionError } from '../src/event-sourcing/index.js';
import { type FeatureModule, startFeatureModule } from './support/feature-module.js';

let feature: FeatureModule;
let commands: CommandBus;
let store: EventStore;
let loader: AggregateLoader;
beforeAll(async () => {
  feature = await startFeatureModule([AccountsModule]);
  commands = feature.moduleRef.get(CommandBus);
  store = feature.moduleRef.get(EventStore);
  loader = feature.moduleRef.get(AggregateLoader);
});
afterAll(() => feature?.close());

/** An account opened with `balance` by this process's commands (so that the cache holds it). */
async function cachedAccount(balance: number) {
  const id = randomUUID();
  await store.append(accountStreamId(id), [new AccountOpened({ accountId: id, ownerName: 'Ada', currency: 'EUR' })], {
    expectedVersion: NO_STREAM,
  });
  await commands.execute(new DepositMoney(id, balance));
  return id;
}

/** Another instance's deposit: straight to the store, which this process's cache cannot see. */
async function depositElsewhere(id: string, amount: number, balanceAfter: number, expectedVersion: number) {
  await store.append(accountStreamId(id), [new MoneyDeposited({ accountId: id, amount, balanceAfter, reference: null })], {
    expectedVersion,
  });
}

async function stored(id: string) {
  return (await store.readStream(accountStreamId(id))).map((event) => ({ version: event.version, data: event.data }));
}

function countLoads() {
  const load = jest.spyOn(loader, 'load');
  return {
    get count() {
      return load.mock.calls.length;
    },
    restore: () => load.mockRestore(),
  };
}

describe('the aggregate cache of the command runner', () => {
  it('a command on a stream this process appended to last decides without reading the stream again', async () => {
    const id = await cachedAccount(100);
    const loads = countLoads();
    try {
      const result = await commands.execute<DepositMoney, AppendResult>(new DepositMoney(id, 5));
      expect(result.version).toBe(3);
      expect(loads.count).toBe(0);
    } finally {
      loads.restore();
    }
    expect((await stored(id)).at(-1)).toEqual({
      version: 3,
      data: new MoneyDeposited({ accountId: id, amount: 5, balanceAfter: 105, reference: null }),
    });
  });

  it('stale after another instance appended: the append conflicts, and the command is decided again on the stored stream', async () => {
    const id = await cachedAccount(100);
    await depositElsewhere(id, 1000, 1100, 2);
    const result = await commands.execute<DepositMoney, AppendResult>(new DepositMoney(id, 5));
    expect(result.version).toBe(4);
    expect((await stored(id)).at(-1)!.data).toEqual(new MoneyDeposited({ accountId: id, amount: 5, balanceAfter: 1105, reference: null }));
  });

  it('a refusal is never answered from the cache: the withdrawal the stored balance allows succeeds', async () => {
    const id = await cachedAccount(100); // cached balance: 100
    await depositElsewhere(id, 500, 600, 2); // stored balance: 600
    const result = await commands.execute<WithdrawMoney, AppendResult>(new WithdrawMoney(id, 300));
    expect(result.version).toBe(4);
    expect((await stored(id)).at(-1)!.data).toEqual(new MoneyWithdrawn({ accountId: id, amount: 300, balanceAfter: 300, reference: null }));
  });

  it('a refusal the stored stream confirms is still refused, with the stored balance', async () => {
    const id = await cachedAccount(100);
    await expect(commands.execute(new WithdrawMoney(id, 101))).rejects.toBeInstanceOf(InsufficientFundsError);
    expect(await stored(id)).toHaveLength(2);
  });

  it('If-Match: a version the cache has not seen yet but the store has is accepted; one the store has passed is refused with the stored version', async () => {
    const id = await cachedAccount(100); // cached at version 2
    await depositElsewhere(id, 1, 101, 2); // stored at version 3
    const result = await commands.execute<DepositMoney, AppendResult>(new DepositMoney(id, 5, 3));
    expect(result.version).toBe(4);

    await depositElsewhere(id, 1, 107, 4); // cached at 4, stored at 5
    const refused = commands.execute(new DepositMoney(id, 5, 4));
    await expect(refused).rejects.toBeInstanceOf(WrongExpectedVersionError);
    await expect(refused).rejects.toMatchObject({ actualVersion: 5 });
    expect(await stored(id)).toHaveLength(5);
  });

  it('the snapshot written after a cached append is the state folded once (the open debits are shared along a fold)', async () => {
    const id = await cachedAccount(1000); // version 2; a snapshot every 100 events by default
    for (let n = 0; n < 49; n++) {
      const transferId = randomUUID();
      await commands.execute(new DebitForTransfer(id, transferId, 10, 'EUR'));
      await commands.execute(new SettleTransfer(id, transferId, 10, 'EUR')); // version 100 is a settle
    }
    // A load from the store (the snapshot at version 100 and the events after it), not from the cache.
    const loaded = await loader.load(accountStreamId(id), accountDecider);
    expect(loaded.version).toBe(100);
    expect(loaded.state).toMatchObject({ status: 'open', balance: 510, inFlight: 0 });
  });

  it('a unit of work that committed leaves the states it appended cached: the next command does not read them', async () => {
    const id = await cachedAccount(100);
    await store.transaction(() => commands.execute(new DepositMoney(id, 7)), { flat: true });
    const loads = countLoads();
    try {
      const result = await commands.execute<DepositMoney, AppendResult>(new DepositMoney(id, 1));
      expect(result.version).toBe(4);
      expect(loads.count).toBe(0);
    } finally {
      loads.restore();
    }
    expect((await stored(id)).at(-1)?.data).toEqual(new MoneyDeposited({ accountId: id, amount: 1, balanceAfter: 108, reference: null }));
  });

  it('a unit of work that rolled back leaves nothing cached: the next command reads the stream and decides on what is stored', async () => {
    const id = await cachedAccount(100);
    await expect(
      store.transaction(async () => {
        await commands.execute(new DepositMoney(id, 7));
        throw new Error('rolled back on purpose');
      }),
    ).rejects.toThrow('rolled back on purpose');
    const loads = countLoads();
    try {
      const result = await commands.execute<DepositMoney, AppendResult>(new DepositMoney(id, 1));
      expect(result.version).toBe(3);
      expect(loads.count).toBe(1);
    } finally {
      loads.restore();
    }
    expect((await stored(id)).at(-1)?.data).toEqual(new MoneyDeposited({ accountId: id, amount: 1, balanceAfter: 101, reference: null }));
  });

  it('concurrent commands on one stream: every deposit counted once, each balance right after the one before', async () => {
    const id = await cachedAccount(1);
    // A few at once: each loser is decided again (up to COMMAND_MAX_ATTEMPTS), on a fresh load.
    await Promise.all(Array.from({ length: 5 }, () => commands.execute(new DepositMoney(id, 1))));
    const balances = (await stored(id)).slice(1).map((event) => (event.data as MoneyDeposited).balanceAfter);
    expect(balances).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
