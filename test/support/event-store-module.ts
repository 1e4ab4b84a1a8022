import type { Provider, Type } from '@nestjs/common';
import { CqrsModule, EventBus } from '@nestjs/cqrs';
import { Test, type TestingModule } from '@nestjs/testing';
import { DataSource } from 'typeorm';
import { DatabaseModule } from '../../src/database/database.module.js';
import { loadConfig } from '../../src/config/app-config.js';
import {
  Clock,
  type EventClass,
  EventSourcingModule,
  type CommitOrderLog,
  EventLogReader,
  EventStore,
  type Projection,
  type ProjectionEngineOptions,
} from '../../src/event-sourcing/index.js';
import { type TestDatabase, createTestDatabase } from './test-database.js';

export interface EventStoreModule {
  readonly moduleRef: TestingModule;
  readonly store: EventStore;
  /** The global log in commit-safe order (the query side's reader; the same database here). */
  readonly log: CommitOrderLog;
  readonly dataSource: DataSource;
  readonly eventBus: EventBus;
  readonly database: TestDatabase;
  close(): Promise<void>;
}

export interface EventStoreModuleOptions {
  /** The test's event classes, registered with EventSourcingModule.forFeature. */
  readonly events: ReadonlyArray<EventClass<any>>;
  /** Extra providers, e.g. @EventsHandler classes. */
  readonly providers?: Provider[];
  /** Pool size of the DataSource (large enough for the test's parallelism). */
  readonly poolSize?: number;
  /** Replaces the Clock, so occurredAt is predictable. */
  readonly clock?: Clock;
  /** Projections of the test (providers registered with forFeature) and engine settings. */
  readonly projections?: ReadonlyArray<Type<Projection>>;
  readonly engine?: Partial<ProjectionEngineOptions>;
  /** Group-commit statements in flight (EventSourcingModule's commands.appendGroupStatements). */
  readonly appendGroupStatements?: number;
  /** Another module's database, shared (a second instance of the store); not dropped on close. */
  readonly database?: TestDatabase;
}

/**
 * The event-sourcing core alone (no feature of the application), on a fresh database of the test
 * server with the real migrations applied: DatabaseModule + CqrsModule + EventSourcingModule.
 */
export async function startEventStoreModule(options: EventStoreModuleOptions): Promise<EventStoreModule> {
  const database = options.database ?? (await createTestDatabase());
  let builder = Test.createTestingModule({
    imports: [
      DatabaseModule.forRoot(database.url, options.poolSize ?? 10),
      CqrsModule.forRoot(),
      EventSourcingModule.forRoot({
        commands: { maxAttempts: 10, appendGroupStatements: options.appendGroupStatements },
        // One segment unless a test asks for more (as projection-fixtures.ts).
        projections: { ...loadConfig({}).projections, segments: { default: 1, byName: {} }, ...options.engine },
        snapshots: { intervals: loadConfig({}).snapshotIntervals },
      }),
      EventSourcingModule.forFeature({ events: options.events, projections: options.projections }),
    ],
    providers: options.providers ?? [],
  });
  if (options.clock) builder = builder.overrideProvider(Clock).useValue(options.clock);
  const moduleRef = await builder.compile();
  moduleRef.useLogger(false);
  await moduleRef.init(); // registers @EventsHandler classes on the EventBus
  return {
    moduleRef,
    store: moduleRef.get(EventStore),
    log: moduleRef.get(EventLogReader).log,
    dataSource: moduleRef.get(DataSource),
    eventBus: moduleRef.get(EventBus),
    database,
    async close() {
      await moduleRef.close();
      if (!options.database) await database.drop();
    },
  };
}
