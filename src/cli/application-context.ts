import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from '../app.module.js';
import type { AppConfig } from '../config/app-config.js';
import { migrate } from '../database/migrate.js';
import { operatorDatabase } from './operator-database.js';

/**
 * Runs `work` in the application without HTTP (the same modules, so the same ProjectionAdmin as the
 * admin API), then closes it and the embedded database if it started one. Projection runners stay
 * off unless `runProjections`: a command must not take a lease and apply events behind the running
 * service's back. Pending migrations are applied at start, as the service does.
 */
export async function withApplication<T>(
  config: AppConfig,
  options: { runProjections: boolean },
  work: (app: INestApplicationContext) => Promise<T>,
): Promise<T> {
  const database = await operatorDatabase(config);
  try {
    // Migrated here first, on a plain connection: an unreachable database or a refused login fails
    // at once as one error (reported in one line). Left to the application's TypeORM module, it is
    // retried for half a minute with a logged stack each time. The application then finds none pending.
    await migrate(config, database.url);
    // Nor may a command change (or refuse) the stored segment layout: it runs the stored count, which
    // a service beside it may be running with (engine option changeLayout: false).
    const projections = { ...config.projections, enabled: options.runProjections, changeLayout: false };
    const app = await NestFactory.createApplicationContext(AppModule.forRoot({ ...config, projections }, database.url), {
      logger: ['error', 'warn'],
      abortOnError: false, // a failed start throws (reported as one line) instead of exiting with a stack
    });
    try {
      return await work(app);
    } finally {
      await app.close();
    }
  } finally {
    await database.stop();
  }
}
