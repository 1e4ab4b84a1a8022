import type { DynamicModule, Type } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { Test, type TestingModule } from '@nestjs/testing';
import { APP_CONFIG } from '../../src/config/app-config.provider.js';
import { loadConfig } from '../../src/config/app-config.js';
import { DatabaseModule } from '../../src/database/database.module.js';
import { EventSourcingModule } from '../../src/event-sourcing/index.js';
import { type TestDatabase, createTestDatabase } from './test-database.js';

export interface FeatureModule {
  readonly moduleRef: TestingModule;
  readonly database: TestDatabase;
  close(): Promise<void>;
}

/**
 * Feature modules (e.g. AccountsModule) on the real core, as AppModule wires them — DatabaseModule
 * (migrations applied), CqrsModule, EventSourcingModule.forRoot with the default configuration — on
 * a fresh database of the test server, without HTTP. What commandSpec (src/event-sourcing/testing)
 * sends its commands through: `commandSpec(() => feature.moduleRef)`.
 */
export async function startFeatureModule(
  imports: ReadonlyArray<Type | DynamicModule>,
  env: Record<string, string> = {},
): Promise<FeatureModule> {
  const database = await createTestDatabase();
  const config = loadConfig(env);
  // The configuration, global as AppModule provides it (controllers' interceptors read it).
  const configModule: DynamicModule = {
    module: class FeatureTestConfig {},
    global: true,
    providers: [{ provide: APP_CONFIG, useValue: config }],
    exports: [APP_CONFIG],
  };
  const moduleRef = await Test.createTestingModule({
    imports: [
      configModule,
      DatabaseModule.forRoot(database.url, config.databasePoolSize),
      CqrsModule.forRoot(),
      EventSourcingModule.forRoot({
        commands: { maxAttempts: config.commandMaxAttempts, aggregateCacheSize: config.aggregateCacheSize },
        projections: config.projections,
        snapshots: { intervals: config.snapshotIntervals },
      }),
      ...imports,
    ],
  }).compile();
  moduleRef.useLogger(false);
  await moduleRef.init();
  return {
    moduleRef,
    database,
    async close() {
      await moduleRef.close();
      await database.drop();
    },
  };
}
