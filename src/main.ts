import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createApp } from './app.factory.js';
import { loadConfig, loadDotEnv, logLevelsUpTo } from './config/app-config.js';
import { openDatabase } from './database/database.js';
import { developmentToken } from './auth/token-issuer.js';
import { handleShutdownSignals } from './observability/health/graceful-shutdown.js';

async function bootstrap(): Promise<void> {
  loadDotEnv();
  const config = loadConfig();
  Logger.overrideLogger(logLevelsUpTo(config.logLevel));
  const logger = new Logger('Bootstrap');
  const database = await openDatabase(config, (message) => logger.log(message));
  let app;
  try {
    app = await createApp(config, database.url);
    await app.listen(config.port);
  } catch (error) {
    await app?.close().catch(() => undefined);
    await database.stop();
    throw error;
  }
  const url = `http://localhost:${config.port}`;
  logger.log(`Listening on ${url} — Swagger UI at ${url}/docs, OpenAPI at ${url}/docs-json`);
  if (config.auth.key.kind === 'secret' && config.auth.key.isDevelopmentDefault) {
    // Only with the built-in development secret (never in production: loadConfig refuses it there).
    logger.warn(
      `Development JWT secret in use. A token with every scope (30 days), for Swagger's Authorize button or curl -H "Authorization: Bearer …":\n${developmentToken(config)}`,
    );
  }

  handleShutdownSignals(app, config, logger, () => database.stop());
}

bootstrap().catch((error: unknown) => {
  const known =
    error instanceof Error &&
    ['ConfigError', 'EmbeddedDatabaseError', 'UnreadableEventSchemaError', 'PendingMigrationsError'].includes(error.name);
  console.error(known ? `Cannot start: ${error.message}` : error);
  process.exit(1);
});
