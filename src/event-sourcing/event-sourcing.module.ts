import { type DynamicModule, Global, Module, type Provider, type Type } from '@nestjs/common';
import { Clock } from './clock.js';
import { COMMAND_RUNNER_OPTIONS, CommandRunner, type CommandRunnerOptions } from './command-runner.js';
import { EventStore } from './event-store.js';
import type { EventClass } from './event-type.js';
import { EventTypeRegistry } from './event-type.registry.js';
import type { Projection } from './projection.js';
import { ProjectionRebuilder } from './projection-rebuilder.js';
import { ProjectionRegistry } from './projection.registry.js';

export interface EventSourcingFeature {
  /** Every event class the feature writes or reads (its @EventType name is what is stored). */
  readonly events: readonly EventClass<any>[];
  /** Projections kept from the log; they become providers of the feature's module. */
  readonly projections?: readonly Type<Projection>[];
}

/**
 * The reusable event-sourcing core. Needs a TypeORM DataSource and CqrsModule.forRoot() in the
 * application; knows nothing of any feature. Features declare their events and projections with
 * forFeature().
 */
@Global()
@Module({})
export class EventSourcingModule {
  static forRoot(options: CommandRunnerOptions): DynamicModule {
    return {
      module: EventSourcingModule,
      providers: [
        Clock,
        EventTypeRegistry,
        ProjectionRegistry,
        ProjectionRebuilder,
        EventStore,
        CommandRunner,
        { provide: COMMAND_RUNNER_OPTIONS, useValue: options },
      ],
      exports: [Clock, EventTypeRegistry, ProjectionRegistry, ProjectionRebuilder, EventStore, CommandRunner],
    };
  }

  static forFeature(feature: EventSourcingFeature): DynamicModule {
    const projections = feature.projections ?? [];
    const registration: Provider = {
      provide: Symbol('event-sourcing-feature'),
      inject: [EventTypeRegistry, ProjectionRegistry, ...projections],
      useFactory: (types: EventTypeRegistry, registry: ProjectionRegistry, ...instances: Projection[]) => {
        types.register(feature.events);
        registry.register(instances);
        return feature;
      },
    };
    return {
      module: EventSourcingFeatureModule,
      providers: [...projections, registration],
      exports: [...projections],
    };
  }
}

@Module({})
class EventSourcingFeatureModule {}
