import { type DynamicModule, Module, type Type } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { CqrsModule } from '@nestjs/cqrs';
import { AccountsModule } from './accounts/accounts.module.js';
import { AdminModule } from './admin/admin.module.js';
import { AuthModule } from './auth/auth.module.js';
import { APP_CONFIG } from './config/app-config.provider.js';
import type { AppConfig } from './config/app-config.js';
import { DatabaseModule } from './database/database.module.js';
import { EventLogModule } from './event-log/event-log.module.js';
import { EventSourcingModule } from './event-sourcing/index.js';
import { HealthModule } from './observability/health/health.module.js';
import { MetricsModule } from './observability/metrics/metrics.module.js';
import { RelayModule } from './relay/relay.module.js';
import { IdempotencyInterceptor } from './shared/idempotency/idempotency.interceptor.js';
import { TransfersModule } from './transfers/transfers.module.js';

@Module({})
export class AppModule {
  /** `extraImports` are appended to the imports (e.g. the benchmark's bare endpoints). */
  static forRoot(config: AppConfig, databaseUrl: string, extraImports: ReadonlyArray<DynamicModule | Type> = []): DynamicModule {
    return {
      module: AppModule,
      global: true,
      imports: [
        DatabaseModule.forRoot({ main: databaseUrl, ...config.sideDatabaseUrls }, config.databasePoolSize, config.databaseSchema, {
          migrationsRun: config.migrationsRun,
          timeouts: config.databaseTimeouts,
        }),
        CqrsModule.forRoot(),
        AuthModule.forRoot(config),
        EventSourcingModule.forRoot({
          commands: {
            maxAttempts: config.commandMaxAttempts,
            appendGroupStatements: config.appendGroupStatements,
            aggregateCacheSize: config.aggregateCacheSize,
            laneMaxWaitMs: config.commandLaneMaxWaitMs,
          },
          projections: config.projections,
          snapshots: { intervals: config.snapshotIntervals },
        }),
        AccountsModule,
        TransfersModule,
        EventLogModule,
        AdminModule,
        HealthModule,
        MetricsModule.forRoot(config),
        // Off unless NATS_URL is set: the embedded default needs no broker.
        ...(config.nats
          ? [
              RelayModule.forRoot({
                natsUrl: config.nats.url,
                stream: config.nats.stream,
                publishConcurrency: config.nats.publishConcurrency,
              }),
            ]
          : []),
        ...extraImports,
      ],
      providers: [
        { provide: APP_CONFIG, useValue: config },
        { provide: APP_INTERCEPTOR, useClass: IdempotencyInterceptor },
      ],
      exports: [APP_CONFIG],
    };
  }
}
