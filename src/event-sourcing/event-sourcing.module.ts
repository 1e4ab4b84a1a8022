import { type DynamicModule, Global, Module, type Provider, type Type } from '@nestjs/common';
import { Clock } from './clock.js';
import { COMMAND_RUNNER_OPTIONS, CommandRunner, type CommandRunnerOptions } from './command-runner.js';
import { EventLogReader } from './event-log-reader.js';
import { EventStore } from './event-store.js';
import type { EventClass } from './event-type.js';
import { EventTypeRegistry, type Upcaster } from './event-type.registry.js';
import { AggregateLoader } from './aggregate-loader.js';
import { SNAPSHOT_OPTIONS, type SnapshotOptions, SnapshotStore } from './snapshot-store.js';
import { StateAt } from './state-at.js';
import { StoredSchemaCheck } from './stored-schema-check.js';
import { EventNotifier } from './event-notifier.js';
import { ProjectionAdmin } from './projection-admin.js';
import { ProjectionCheckpoints } from './projection-checkpoints.js';
import { PROJECTION_ENGINE_OPTIONS, ProjectionEngine, type ProjectionEngineOptions } from './projection-engine.js';
import { ProjectionStatus } from './projection-status.js';
import { ProjectionWaiter } from './projection-waiter.js';
import type { Projection } from './projection.js';
import type { ProcessManager } from './process-manager.js';
import type { Subscriber } from './subscriber.js';
import { ProjectionRegistry } from './projection.registry.js';

export interface EventSourcingOptions {
  readonly commands: CommandRunnerOptions;
  readonly projections: ProjectionEngineOptions;
  readonly snapshots: SnapshotOptions;
}

export interface EventSourcingFeature {
  /** Every event class the feature writes or reads (its @EventType name is what is stored). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any event class: a constructor's data parameter makes EventClass<object> reject them
  readonly events: ReadonlyArray<EventClass<any>>;
  /**
   * Projections kept from the log (read models); they become providers of the feature's module. A
   * process manager listed here is still run as one (the registry goes by its `kind`), but belongs
   * in processManagers.
   */
  readonly projections?: ReadonlyArray<Type<Projection | ProcessManager>>;
  /** Process managers reacting to the log; they become providers of the feature's module too. */
  readonly processManagers?: ReadonlyArray<Type<ProcessManager>>;
  /** Upcasters of the feature's older event schema versions. */
  readonly upcasters?: readonly Upcaster[];
}

/**
 * The reusable event-sourcing core. Needs a TypeORM DataSource (the command side), the
 * QUERY_DATA_SOURCE and PROJECTOR_DATA_SOURCE providers (see data-sources.ts) and CqrsModule.forRoot() in the
 * application; knows nothing of any feature. Features declare their events and projections with
 * forFeature().
 */
@Global()
@Module({})
export class EventSourcingModule {
  static forRoot(options: EventSourcingOptions): DynamicModule {
    const services = [
      Clock,
      EventTypeRegistry,
      ProjectionRegistry,
      EventStore,
      EventLogReader,
      CommandRunner,
      ProjectionCheckpoints,
      EventNotifier,
      ProjectionEngine,
      ProjectionWaiter,
      ProjectionStatus,
      ProjectionAdmin,
      StoredSchemaCheck,
      StateAt,
      SnapshotStore,
      AggregateLoader,
    ];
    return {
      module: EventSourcingModule,
      providers: [
        ...services,
        { provide: COMMAND_RUNNER_OPTIONS, useValue: options.commands },
        { provide: PROJECTION_ENGINE_OPTIONS, useValue: options.projections },
        { provide: SNAPSHOT_OPTIONS, useValue: options.snapshots },
      ],
      exports: services,
    };
  }

  static forFeature(feature: EventSourcingFeature): DynamicModule {
    const subscribers = [...(feature.projections ?? []), ...(feature.processManagers ?? [])];
    const registration: Provider = {
      provide: Symbol('event-sourcing-feature'),
      inject: [EventTypeRegistry, ProjectionRegistry, ...subscribers],
      useFactory: (types: EventTypeRegistry, registry: ProjectionRegistry, ...instances: Subscriber[]) => {
        types.register(feature.events);
        types.registerUpcasters(feature.upcasters ?? []);
        registry.register(instances);
        return feature;
      },
    };
    return {
      module: EventSourcingFeatureModule,
      providers: [...subscribers, registration],
      exports: [...subscribers],
    };
  }
}

@Module({})
class EventSourcingFeatureModule {}
