import { type DynamicModule, type LoggerService, Module } from '@nestjs/common';
import { Logger as NestPinoLogger, LoggerModule, PinoLogger } from 'nestjs-pino';
import type { Logger } from 'pino';

/**
 * nestjs-pino over the process's root logger: `app.useLogger(app.get(NestPinoLogger))` sends Nest's
 * own Logger calls through pino. `useExisting`: the access-log middleware (httpAccessLog) is mounted
 * by createApp ahead of body parsing, so that refused bodies are logged too; nestjs-pino only puts
 * that request's logger in its request scope.
 */
@Module({})
export class LoggingModule {
  static forRoot(logger: Logger): DynamicModule {
    return { module: LoggingModule, imports: [LoggerModule.forRoot({ pinoHttp: { logger }, useExisting: true })] };
  }
}

export { NestPinoLogger };

/**
 * A Nest LoggerService on `logger` for use before the application exists (main.ts's start-up lines,
 * the embedded database's): the same nestjs-pino classes the application uses, built by hand.
 */
export function nestLoggerOver(logger: Logger): LoggerService {
  return new NestPinoLogger(new PinoLogger({ pinoHttp: { logger }, useExisting: true }), {});
}
