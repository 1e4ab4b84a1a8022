import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable, Module } from '@nestjs/common';
import { Command, CommandHandler } from '@nestjs/cqrs';
import type { EntityManager } from 'typeorm';
import { accountStreamId } from '../src/accounts/account.js';
import { AccountNotFoundError, InsufficientFundsError } from '../src/accounts/account.errors.js';
import { AccountOpened, MoneyDeposited } from '../src/accounts/account.events.js';
import { AccountsModule } from '../src/accounts/accounts.module.js';
import { DepositMoney } from '../src/accounts/deposit-money/deposit-money.command.js';
import { EventStore, NO_STREAM, type Projection, ProjectionHandlers, type RecordedEvent } from '../src/event-sourcing/index.js';
import { commandSpec } from '../src/event-sourcing/testing/command-spec.js';
import { projectionSpec } from '../src/event-sourcing/testing/projection-spec.js';
import { TestEventLog } from '../src/event-sourcing/testing/test-event-log.js';
import { type FeatureModule, startFeatureModule } from './support/feature-module.js';
import { type ProjectionDatabase, startProjectionDatabase } from './support/projection-database.js';

// The kit itself, attacked: each spec must FAIL on the defect it exists to catch.

const ada = '11111111-1111-4111-8111-111111111111';
const log = new TestEventLog();
const opened = log.record(accountStreamId(ada), new AccountOpened({ accountId: ada, ownerName: 'Ada', currency: 'EUR' }));
const deposited = log.record(accountStreamId(ada), new MoneyDeposited({ accountId: ada, amount: 5, balanceAfter: 5 }));

/** Counts events in `table` (id = 1): n = n + 1 per event, deliberately not idempotent. */
const counting = (table: string): Projection => ({
  name: `counting-${table}`,
  mode: 'async',
  tables: [table],
  handlers: new ProjectionHandlers().on(AccountOpened, count(table)).on(MoneyDeposited, count(table)),
});
const count = (table: string) => async (_event: RecordedEvent, manager: EntityManager) => {
  await manager.query(`INSERT INTO ${table} (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = ${table}.n + 1`);
};

/** Idempotent, but one row per batch: its rows depend on how the log is cut. */
const perBatch: Projection = {
  name: 'per-batch',
  mode: 'async',
  tables: ['kit_batches'],
  async applyBatch(events: readonly RecordedEvent[], manager: EntityManager) {
    await manager.query('INSERT INTO kit_batches (first_position) VALUES ($1) ON CONFLICT DO NOTHING', [events[0].position]);
  },
};

describe('projectionSpec catches', () => {
  let db: ProjectionDatabase;
  beforeAll(async () => {
    db = await startProjectionDatabase();
    await db.dataSource.query('CREATE TABLE kit_counts (id int PRIMARY KEY, n int NOT NULL)');
    await db.dataSource.query('CREATE TABLE kit_batches (first_position bigint PRIMARY KEY)');
    await db.dataSource.query('GRANT SELECT, INSERT, UPDATE ON kit_counts, kit_batches TO ledger_projector');
    await db.dataSource.query('GRANT SELECT ON kit_counts, kit_batches TO ledger_query');
    await db.dataSource.query('CREATE TABLE kit_ungranted (id int PRIMARY KEY, n int NOT NULL)'); // no grant
  });
  afterAll(() => db?.close());
  const spec = (projection: Projection, rows: string) => projectionSpec(projection, { dataSource: () => db.dataSource, rows });

  it('rows other than expected', async () => {
    const counts = spec(counting('kit_counts'), 'SELECT id, n FROM kit_counts');
    await counts
      .given([opened])
      .when([deposited])
      .then([{ id: 1, n: 2 }]);
    await expect(
      counts
        .given([opened])
        .when([deposited])
        .then([{ id: 1, n: 3 }]),
    ).rejects.toThrow('given then when');
  });

  it('a projection that is not idempotent', async () => {
    await expect(
      spec(counting('kit_counts'), 'SELECT id, n FROM kit_counts').given([opened]).when([deposited]).thenIdempotent(),
    ).rejects.toThrow('applied twice');
  });

  it('a set-based projection whose rows depend on the batches', async () => {
    const batches = spec(perBatch, 'SELECT first_position::int AS p FROM kit_batches ORDER BY 1');
    await expect(
      batches
        .given([])
        .when([opened, deposited])
        .then([{ p: 1 }]),
    ).rejects.toThrow('one event per batch');
  });

  it('a table the migration did not grant to ledger_projector (and only because of the role)', async () => {
    const ungranted = 'SELECT id, n FROM kit_ungranted';
    await expect(
      spec(counting('kit_ungranted'), ungranted)
        .given([opened])
        .then([{ id: 1, n: 1 }]),
    ).rejects.toThrow(/permission denied/);
    await projectionSpec(counting('kit_ungranted'), { dataSource: () => db.dataSource, rows: ungranted, roles: null })
      .given([opened])
      .then([{ id: 1, n: 1 }]);
  });
});

class AppendThenRefuse extends Command<void> {
  constructor(readonly streamId: string) {
    super();
  }
}

/** A broken handler: appends, then refuses. commandSpec must not call that "refused, nothing appended". */
@Injectable()
@CommandHandler(AppendThenRefuse)
class AppendThenRefuseHandler {
  constructor(private readonly store: EventStore) {}
  async execute(command: AppendThenRefuse): Promise<void> {
    await this.store.append(command.streamId, [new AccountOpened({ accountId: ada, ownerName: 'Ada', currency: 'EUR' })], {
      expectedVersion: NO_STREAM,
    });
    throw new AccountNotFoundError(ada);
  }
}

@Module({ providers: [AppendThenRefuseHandler] })
class BrokenModule {}

describe('commandSpec catches', () => {
  let feature: FeatureModule;
  beforeAll(async () => {
    feature = await startFeatureModule([AccountsModule, BrokenModule]);
  });
  afterAll(() => feature?.close());
  const spec = commandSpec(() => feature.moduleRef);

  it('other events than expected, or other versions', async () => {
    const id = randomUUID();
    const stream = accountStreamId(id);
    const history = [new AccountOpened({ accountId: id, ownerName: 'Ada', currency: 'EUR' })];
    await expect(
      spec
        .given(stream, history)
        .when(new DepositMoney(id, 5))
        .then([{ streamId: stream, version: 2, data: new MoneyDeposited({ accountId: id, amount: 5, balanceAfter: 6 }) }]),
    ).rejects.toThrow('other events appended than expected');
    const other = randomUUID();
    await expect(
      spec
        .given(accountStreamId(other), [new AccountOpened({ accountId: other, ownerName: 'Bob', currency: 'EUR' })])
        .when(new DepositMoney(other, 5))
        .then([
          { streamId: accountStreamId(other), version: 3, data: new MoneyDeposited({ accountId: other, amount: 5, balanceAfter: 5 }) },
        ]),
    ).rejects.toThrow('other events appended than expected');
  });

  it('a command that succeeds where a refusal was expected, or is refused with another error', async () => {
    const id = randomUUID();
    const history = [new AccountOpened({ accountId: id, ownerName: 'Ada', currency: 'EUR' })];
    await expect(spec.given(accountStreamId(id), history).when(new DepositMoney(id, 5)).thenThrows(InsufficientFundsError)).rejects.toThrow(
      'it succeeded',
    );
    await expect(spec.when(new DepositMoney(randomUUID(), 5)).thenThrows(InsufficientFundsError)).rejects.toBeInstanceOf(
      AccountNotFoundError,
    );
  });

  it('a refusal that appended anyway', async () => {
    await expect(spec.when(new AppendThenRefuse(`kit-${randomUUID()}`)).thenThrows(AccountNotFoundError)).rejects.toThrow(
      'was refused but appended',
    );
  });
});
