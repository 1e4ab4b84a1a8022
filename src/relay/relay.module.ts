import { type DynamicModule, Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { EventSourcingModule } from '../event-sourcing/index.js';
import { EventRelay } from './event-relay.js';
import { EVENT_TRANSPORT } from './event-transport.js';
import { RELAY_PUBLISH_CONCURRENCY, RelayProjection } from './relay-projection.adapter.js';

export interface RelayOptions {
  readonly natsUrl: string;
  readonly stream: string;
  /** NATS_PUBLISH_CONCURRENCY: streams whose events are published at once (each stream's in order). */
  readonly publishConcurrency: number;
}

/** Relays every committed event to NATS JetStream (imported only when NATS_URL is set). */
@Module({})
export class RelayModule implements OnApplicationShutdown {
  constructor(@Inject(EventRelay) private readonly relay: EventRelay) {}

  static forRoot(options: RelayOptions): DynamicModule {
    return {
      module: RelayModule,
      // Global: the engine's feature module builds RelayProjection, which needs EventRelay.
      global: true,
      imports: [EventSourcingModule.forFeature({ events: [], processManagers: [RelayProjection] })],
      providers: [
        {
          provide: EVENT_TRANSPORT,
          // Loaded here, not at the top: the NATS client (@nats-io/*, about 60 modules) stays out of
          // the memory of a service without NATS_URL, which never imports this module (issue 14).
          useFactory: async () => {
            const { JetStreamTransport } = await import('./jetstream-transport.js');
            return new JetStreamTransport(options.natsUrl, options.stream);
          },
        },
        { provide: RELAY_PUBLISH_CONCURRENCY, useValue: options.publishConcurrency },
        EventRelay,
      ],
      exports: [EventRelay, RELAY_PUBLISH_CONCURRENCY],
    };
  }

  /** After the engine stopped its runners (beforeApplicationShutdown): nothing publishes any more. */
  async onApplicationShutdown(): Promise<void> {
    await this.relay.close();
  }
}
