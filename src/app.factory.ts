import { type DynamicModule, type INestApplication, type LoggerService, type Type, ValidationPipe } from '@nestjs/common';
import type { Logger as PinoLogger } from 'pino';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { type ValidationError } from 'class-validator';
import helmet from 'helmet';
import { AppModule } from './app.module.js';
import { type AppConfig, logLevelsUpTo } from './config/app-config.js';
import { httpMetrics } from './observability/metrics/http-metrics.middleware.js';
import { LedgerMetrics } from './observability/metrics/ledger-metrics.js';
import { correlationId } from './shared/http/correlation.middleware.js';
import { jsonBodyGuard } from './shared/http/json-body-guard.middleware.js';
import { jsonOnly } from './shared/http/json-only.middleware.js';
import { httpAccessLog } from './observability/http-access-log.js';
import { LoggingModule, NestPinoLogger } from './observability/logging.module.js';
import { requestContext } from './observability/request-context.js';
import { createRootLogger } from './observability/root-logger.js';
import { ProblemDetailsFilter } from './shared/problem-details/problem-details.filter.js';
import type { InvalidField } from './shared/problem-details/problem-details.js';
import { ValidationProblem } from './shared/problem-details/problem.exception.js';
import { setUpSwagger } from './swagger.js';

export interface CreateAppOptions {
  /**
   * Where Nest's log lines go instead of the root logger (false: nowhere); the root logger, and
   * with it the access lines, is then silent (tests and scripts).
   */
  readonly logger?: LoggerService | false;
  /** The process's root logger (main.ts makes it before the database starts); made from config if absent. */
  readonly rootLogger?: PinoLogger;
  /** Extra modules appended to AppModule's imports (the benchmark's bare endpoints); none in production. */
  readonly imports?: DynamicModule[] | Type[];
}

/**
 * Builds the HTTP application exactly as it runs: main.ts and the end-to-end tests both call this,
 * so the tests exercise the same body limits, filters, validation and Swagger document.
 */
export async function createApp(config: AppConfig, databaseUrl: string, options: CreateAppOptions = {}): Promise<INestApplication> {
  const silent = options.logger !== undefined;
  const rootLogger = options.rootLogger ?? createRootLogger(config, { silent });
  const imports = [LoggingModule.forRoot(rootLogger), ...(options.imports ?? [])];
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config, databaseUrl, imports), {
    bodyParser: false,
    abortOnError: false, // a failed start throws (main.ts reports it and stops the database) instead of exiting
    bufferLogs: !silent, // Nest's start-up lines wait for the pino logger below
    logger: options.logger ?? logLevelsUpTo(config.logLevel),
  });
  if (!silent) app.useLogger(app.get(NestPinoLogger));
  app.disable('x-powered-by');
  app.use(httpMetrics(app.get(LedgerMetrics))); // first: times every answer, refusals before routing included
  // Security headers. Helmet's default Content-Security-Policy ('self' scripts) lets Swagger UI run;
  // without upgrade-insecure-requests, so Swagger UI also loads on a plain-HTTP host (TLS usually ends
  // at a proxy in front of the service).
  app.use(helmet({ contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } } }));
  if (config.corsOrigins.length > 0) {
    app.enableCors({
      origin: [...config.corsOrigins],
      allowedHeaders: ['Authorization', 'Content-Type', 'If-Match', 'Idempotency-Key', 'X-Correlation-Id', 'Last-Event-ID'],
      exposedHeaders: ['ETag', 'Location', 'Retry-After', 'X-Correlation-Id', 'Idempotent-Replayed'],
      maxAge: 600,
    });
  }
  app.set('etag', false); // ETag means "stream version" here; Express's content hashes would blur that
  app.use(correlationId, httpAccessLog(rootLogger), jsonOnly);
  app.useBodyParser('json', { limit: config.bodyLimitBytes, type: ['application/json', 'application/*+json'] });
  app.use(jsonBodyGuard, requestContext);
  app.useGlobalFilters(new ProblemDetailsFilter());
  app.useGlobalPipes(
    new ValidationPipe({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      validationError: { target: false, value: false },
      exceptionFactory: (errors) => new ValidationProblem(flatten(errors)),
    }),
  );
  setUpSwagger(app);
  try {
    await app.init();
  } catch (error) {
    await app.close().catch(() => undefined); // release the pools a half-started app opened
    throw error;
  }
  return app;
}

function flatten(errors: ValidationError[], parent = ''): InvalidField[] {
  return errors.flatMap((error) => {
    const field = parent ? `${parent}.${error.property}` : error.property;
    const own = error.constraints ? [{ field, messages: Object.values(error.constraints) }] : [];
    return [...own, ...flatten(error.children ?? [], field)];
  });
}
