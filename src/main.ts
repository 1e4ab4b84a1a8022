import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createApp } from './app.factory.js';
import { loadConfig, loadDotEnv, logLevelsUpTo } from './config/app-config.js';
import { openDatabase } from './database/database.js';
import { developmentToken } from './auth/token-issuer.js';
import { nestLoggerOver } from './observability/logging.module.js';
import { redactUrl } from './observability/redaction.js';
import { createRootLogger } from './observability/root-logger.js';
import { startTracing, tracingRequested } from './observability/tracing.js';
import { handleShutdownSignals } from './observability/health/graceful-shutdown.js';

async function bootstrap(): Promise<void> {
  loadDotEnv();
  const config = loadConfig();
  Logger.overrideLogger(logLevelsUpTo(config.logLevel));
  // Every line from here on goes through pino (LOG_FORMAT), those before the application exists too.
  const rootLogger = createRootLogger(config);
  Logger.overrideLogger(nestLoggerOver(rootLogger));
  const logger = new Logger('Bootstrap');
  // OpenTelemetry only when an OTEL_* exporter or endpoint is set; the spans are manual, so the SDK
  // may start here, after the imports (docs/operations.md#traces).
  const tracing = tracingRequested() ? await startTracing() : undefined;
  if (tracing) logger.log('Tracing on: spans are exported as the OTEL_* variables say');
  const database = await openDatabase(config, (message) => logger.log(message));
  logger.log(`Database: ${redactUrl(database.url)}${database.embedded ? ' (embedded)' : ''}`); // never its password
  let app;
  try {
    app = await createApp(config, database.url, { rootLogger });
    await app.listen(config.port);
  } catch (error) {
    await app?.close().catch(() => undefined);
    await database.stop();
    throw error;
  }
  const url = `http://localhost:${config.port}`;
  logger.log(`Listening on ${url} — Swagger UI at ${url}/docs, OpenAPI at ${url}/docs-json`);
  if (config.auth.key.kind === 'secret' && config.auth.key.isDevelopmentDefault && config.logFormat === 'json') {
    // JSON lines go to a log store, where no token belongs, even one of the public development secret.
    logger.warn('Development JWT secret in use: `npm run -s token` prints a token for it');
  } else if (config.auth.key.kind === 'secret' && config.auth.key.isDevelopmentDefault) {
    // Only with the built-in development secret (never in production: loadConfig refuses it there).
    logger.warn(
      `Development JWT secret in use. A token with every scope (30 days), for Swagger's Authorize button or curl -H "Authorization: Bearer …":\n${developmentToken(config)}`,
    );
  }

  handleShutdownSignals(app, config, logger, async () => {
    await database.stop();
    await tracing?.stop(); // flushes the spans not exported yet
  });
}

bootstrap().catch((error: unknown) => {
  const known =
    error instanceof Error &&
    ['ConfigError', 'EmbeddedDatabaseError', 'UnreadableEventSchemaError', 'PendingMigrationsError'].includes(error.name);
  console.error(known ? `Cannot start: ${error.message}` : error);
  process.exit(1);
});
