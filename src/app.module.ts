import { type DynamicModule, Module } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { AccountsModule } from './accounts/accounts.module.js';
import { AdminModule } from './admin/admin.module.js';
import { APP_CONFIG } from './config/app-config.provider.js';
import type { AppConfig } from './config/app-config.js';
import { DatabaseModule } from './database/database.module.js';
import { EventSourcingModule } from './event-sourcing/index.js';

@Module({})
export class AppModule {
  static forRoot(config: AppConfig, databaseUrl: string): DynamicModule {
    return {
      module: AppModule,
      global: true,
      imports: [
        DatabaseModule.forRoot(databaseUrl, config.databasePoolSize),
        CqrsModule.forRoot(),
        EventSourcingModule.forRoot({
          commands: { maxAttempts: config.commandMaxAttempts },
          projections: config.projections,
        }),
        AccountsModule,
        AdminModule,
      ],
      providers: [
        { provide: APP_CONFIG, useValue: config },
      ],
      exports: [APP_CONFIG],
    };
  }
}
