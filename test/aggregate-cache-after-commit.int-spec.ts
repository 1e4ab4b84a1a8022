// Review of 2e8584d (a unit of work's appends cached after its COMMIT): the dangerous case is a
// state cached at a version that was rolled back and then written again with other content — the
// append at that version would pass the database's check and store an event decided on a state
// that never was. A unit of work that starts over (UnitOfWorkConflict) and a nested one rolled back
// to its savepoint must leave only what committed in the cache.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { CommandBus } from '@nestjs/cqrs';
import { accountStreamId } from '../src/accounts/account.js';
import { AccountOpened, MoneyDeposited } from '../src/accounts/account.events.js';
import { AccountsModule } from '../src/accounts/accounts.module.js';
import { DepositMoney } from '../src/accounts/deposit-money/deposit-money.command.js';
import { type AppendResult, EventStore, NO_STREAM, UnitOfWorkConflict } from '../src/event-sourcing/index.js';
import { type FeatureModule, startFeatureModule } from './support/feature-module.js';

let feature: FeatureModule;
let commands: CommandBus;
let store: EventStore;
beforeAll(async () => {
  feature = await startFeatureModule([AccountsModule]);
  commands = feature.moduleRef.get(CommandBus);
  store = feature.moduleRef.get(EventStore);
});
afterAll(() => feature?.close());

/** An account opened with `balance` by this process's commands (so that the cache holds it). */
async function cachedAccount(balance: number): Promise<string> {
  const id = randomUUID();
  await store.append(accountStreamId(id), [new AccountOpened({ accountId: id, ownerName: 'Ada', currency: 'EUR' })], {
    expectedVersion: NO_STREAM,
  });
  await commands.execute(new DepositMoney(id, balance));
  return id;
}

async function balances(id: string): Promise<number[]> {
  const events = await store.readStream(accountStreamId(id));
  return events.filter((event) => event.data instanceof MoneyDeposited).map((event) => (event.data as MoneyDeposited).balanceAfter);
}

describe('the aggregate cache after a unit of work', () => {
  it('started over after a conflict: only the attempt that committed is cached', async () => {
    const id = await cachedAccount(100);
    let attempt = 0;
    await store.transaction(
      async () => {
        attempt++;
        // The first attempt deposits 7 at version 3, then loses a race: rolled back, started over.
        await commands.execute(new DepositMoney(id, attempt === 1 ? 7 : 5));
        if (attempt === 1) throw new UnitOfWorkConflict('elsewhere', 'lost on purpose');
      },
      { flat: true },
    );
    expect(attempt).toBe(2);
    const next = await commands.execute<DepositMoney, AppendResult>(new DepositMoney(id, 1));
    expect(next.version).toBe(4);
    expect(await balances(id)).toEqual([100, 105, 106]);
  });

  it('a nested unit of work rolled back to its savepoint, the outer one committed: the rolled-back append is not cached', async () => {
    const id = await cachedAccount(100);
    const other = await cachedAccount(50);
    await store.transaction(async () => {
      await expect(
        store.transaction(async () => {
          await commands.execute(new DepositMoney(id, 7));
          throw new Error('rolled back on purpose');
        }),
      ).rejects.toThrow('rolled back on purpose');
      await commands.execute(new DepositMoney(other, 5));
    });
    // Cached at version 3 with 107, the next deposit would lose a race against nothing and retry.
    const appends = jest.spyOn(store, 'append');
    try {
      const next = await commands.execute<DepositMoney, AppendResult>(new DepositMoney(id, 1));
      expect(next.version).toBe(3);
      expect(appends).toHaveBeenCalledTimes(1);
    } finally {
      appends.mockRestore();
    }
    expect(await balances(id)).toEqual([100, 101]);
    expect(await balances(other)).toEqual([50, 55]);
  });
});
