import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { type AccountState, accountDecider, accountStreamId, depositMoney, openAccount } from '../src/accounts/account.js';
import { AccountAlreadyExistsError } from '../src/accounts/account.errors.js';
import { AccountsModule } from '../src/accounts/accounts.module.js';
import { CommandRunner, EventStore } from '../src/event-sourcing/index.js';
import { type FeatureModule, startFeatureModule } from './support/feature-module.js';

// Review 2 of 5adcd77: another writer creates the stream between the decision on the assumed (empty)
// state and its append. Nothing decided on the empty state may land; the command ends as after reading.

let feature: FeatureModule;
let runner: CommandRunner;
let store: EventStore;
let other: pg.Client;

beforeAll(async () => {
  feature = await startFeatureModule([AccountsModule]);
  runner = feature.moduleRef.get(CommandRunner);
  store = feature.moduleRef.get(EventStore);
  other = new pg.Client(feature.database.url);
  await other.connect();
});
afterAll(async () => {
  await other?.end();
  await feature?.close();
});

async function openElsewhere(id: string): Promise<void> {
  const data = JSON.stringify({ accountId: id, ownerName: 'Bob', currency: 'EUR' });
  const metadata = JSON.stringify({
    correlationId: randomUUID(),
    causationId: randomUUID(),
    occurredAt: new Date().toISOString(),
    eventId: randomUUID(),
  });
  await other.query(
    `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata) VALUES ($1, 1, 'accounts.AccountOpened', 1, $2, $3, $4)`,
    [accountStreamId(id), randomUUID(), data, metadata],
  );
}

describe('a stream created by another writer between decide and append', () => {
  for (const inUnitOfWork of [false, true]) {
    it(`refuses as after reading${inUnitOfWork ? ' (unit of work)' : ''}, then the cache is right`, async () => {
      const id = randomUUID();
      const streamId = accountStreamId(id);
      let decisions = 0;
      const command = () =>
        runner.run({
          streamId,
          decider: accountDecider,
          decide: (state: AccountState) => {
            decisions++;
            return openAccount(state, { accountId: id, ownerName: 'Eve', currency: 'USD' });
          },
          newStream: true,
        });
      // The other writer's insert is in flight (uncommitted) while the append runs: it waits on the
      // (stream_id, version) index, and the other writer commits.
      await other.query('BEGIN');
      await openElsewhere(id);
      const pending = (inUnitOfWork ? store.transaction(command) : command()).then(
        () => undefined,
        (e: unknown) => e,
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      await other.query('COMMIT');
      const error = await pending;
      expect(error).toBeInstanceOf(AccountAlreadyExistsError);
      expect(decisions).toBe(2);
      const events = await store.readStream(streamId);
      expect(events).toHaveLength(1);
      expect((events[0].data as { ownerName: string }).ownerName).toBe('Bob');
      // The next command decides on the stream as stored.
      const deposit = await runner.run({
        streamId,
        decider: accountDecider,
        decide: (state) => depositMoney(state, { accountId: id, amount: 5 }),
      });
      expect(deposit.version).toBe(2);
    });
  }
});
