import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { accountDecider, accountStreamId, depositMoney, openAccount } from '../src/accounts/account.js';
import { AccountAlreadyExistsError } from '../src/accounts/account.errors.js';
import { AccountOpened, MoneyDeposited } from '../src/accounts/account.events.js';
import { AccountsModule } from '../src/accounts/accounts.module.js';
import { CommandRunner, EventStore, NO_STREAM } from '../src/event-sourcing/index.js';
import { type FeatureModule, startFeatureModule } from './support/feature-module.js';

// RunCommand.newStream: a command whose stream id was made for it (POST /transfers' random transfer
// id) decides on the initial state without reading the stream, one round trip fewer. Should the
// stream exist after all, the append at NO_STREAM is refused and the command ends exactly as it would
// have after reading: the same refusal, or its events at the stream's next version, never an event
// decided on a state that was not the stream's.

let feature: FeatureModule;
let runner: CommandRunner;
let store: EventStore;

beforeAll(async () => {
  feature = await startFeatureModule([AccountsModule]);
  runner = feature.moduleRef.get(CommandRunner);
  store = feature.moduleRef.get(EventStore);
});
afterAll(() => feature?.close());

/** Every read of a stream through the store while `work` runs (the loader reads through it). */
async function streamReads<T>(work: () => Promise<T>): Promise<{ result: T | undefined; error: unknown; reads: string[] }> {
  const reads: string[] = [];
  const readStream = store.readStream.bind(store);
  const readAfterSnapshot = store.readStreamAfterSnapshot.bind(store);
  const spies = [
    jest.spyOn(store, 'readStream').mockImplementation((streamId, ...rest) => {
      reads.push(streamId);
      return readStream(streamId, ...rest);
    }),
    jest.spyOn(store, 'readStreamAfterSnapshot').mockImplementation((streamId, ...rest) => {
      reads.push(streamId);
      return readAfterSnapshot(streamId, ...rest);
    }),
  ];
  try {
    return { result: await work(), error: undefined, reads };
  } catch (error) {
    return { result: undefined, error, reads };
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
}

describe('a command on a stream it made the id of (newStream)', () => {
  it('appends at version 1 without reading the stream', async () => {
    const id = randomUUID();
    const streamId = accountStreamId(id);
    const { result, error, reads } = await streamReads(() =>
      runner.run({
        streamId,
        decider: accountDecider,
        decide: (state) => openAccount(state, { accountId: id, ownerName: 'Ada', currency: 'EUR' }),
        newStream: true,
      }),
    );
    expect(error).toBeUndefined();
    expect(result).toMatchObject({ streamId, version: 1 });
    expect(reads).toEqual([]);
    expect((await store.readStream(streamId)).map((event) => event.data)).toEqual([
      new AccountOpened({ accountId: id, ownerName: 'Ada', currency: 'EUR' }),
    ]);
  });

  it('on a stream that exists after all: the refusal it would have met after reading, nothing appended', async () => {
    const id = randomUUID();
    const streamId = accountStreamId(id);
    await store.append(streamId, [new AccountOpened({ accountId: id, ownerName: 'Bob', currency: 'EUR' })], { expectedVersion: NO_STREAM });
    const { error, reads } = await streamReads(() =>
      runner.run({
        streamId,
        decider: accountDecider,
        decide: (state) => openAccount(state, { accountId: id, ownerName: 'Eve', currency: 'USD' }),
        newStream: true,
      }),
    );
    expect(error).toBeInstanceOf(AccountAlreadyExistsError);
    expect(reads).toContain(streamId);
    expect(await store.readStream(streamId)).toHaveLength(1);
  });

  it('the same inside a unit of work: the refusal, not a conflict, and the transaction appends nothing', async () => {
    const id = randomUUID();
    const streamId = accountStreamId(id);
    await store.append(streamId, [new AccountOpened({ accountId: id, ownerName: 'Bob', currency: 'EUR' })], { expectedVersion: NO_STREAM });
    const outcome = store.transaction(() =>
      runner.run({
        streamId,
        decider: accountDecider,
        decide: (state) => openAccount(state, { accountId: id, ownerName: 'Eve', currency: 'USD' }),
        newStream: true,
      }),
    );
    await expect(outcome).rejects.toBeInstanceOf(AccountAlreadyExistsError);
    expect(await store.readStream(streamId)).toHaveLength(1);
  });

  it('a decision refused on the initial state but right on the stream as stored is taken, at the next version', async () => {
    const id = randomUUID();
    const streamId = accountStreamId(id);
    await store.append(streamId, [new AccountOpened({ accountId: id, ownerName: 'Bob', currency: 'EUR' })], { expectedVersion: NO_STREAM });
    const result = await runner.run({
      streamId,
      decider: accountDecider,
      decide: (state) => depositMoney(state, { accountId: id, amount: 5 }),
      newStream: true,
    });
    expect(result).toMatchObject({ streamId, version: 2 });
    expect((await store.readStream(streamId)).map((event) => event.data)).toEqual([
      new AccountOpened({ accountId: id, ownerName: 'Bob', currency: 'EUR' }),
      new MoneyDeposited({ accountId: id, amount: 5, balanceAfter: 5, reference: null }),
    ]);
  });
});

// From the second hostile review (watched failing on 232e5f2): with the caller's expected version
// (If-Match) the refused NO_STREAM append was answered as a version mismatch, without reading.
describe('newStream with the caller’s expectedVersion, on a stream that exists at that version', () => {
  for (const inUnitOfWork of [false, true]) {
    it(`ends as the same command without newStream does${inUnitOfWork ? ', in a unit of work' : ''}`, async () => {
      const id = randomUUID();
      const streamId = accountStreamId(id);
      await store.append(streamId, [new AccountOpened({ accountId: id, ownerName: 'Bob', currency: 'EUR' })], {
        expectedVersion: NO_STREAM,
      });
      const outcome = async (newStream: boolean): Promise<string> => {
        const command = () =>
          runner.run({
            streamId,
            decider: accountDecider,
            decide: (state) => openAccount(state, { accountId: id, ownerName: 'Eve', currency: 'USD' }),
            expectedVersion: 1,
            newStream,
          });
        try {
          await (inUnitOfWork ? store.transaction(command) : command());
          return 'appended';
        } catch (error) {
          return (error as Error).constructor.name;
        }
      };
      expect(await outcome(false)).toBe(AccountAlreadyExistsError.name);
      expect(await outcome(true)).toBe(AccountAlreadyExistsError.name);
      expect(await store.readStream(streamId)).toHaveLength(1);
    });
  }
});
