import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * What every log line written while some work runs is about: the correlation id of the request, or
 * of the event a projection or process manager is handling, plus a few ids that locate the line.
 * The root logger merges it into each line (its pino `mixin`), so code that logs needs to know
 * nothing of it: a command's lines carry the request's correlation id, the lines of a process
 * manager's commands the transfer's, although they run later, in a projection runner.
 */
export interface LogContext {
  readonly correlationId: string;
  readonly [field: string]: string | number | undefined;
}

const current = new AsyncLocalStorage<LogContext>();

/** Runs `work` (and everything it awaits or starts) with `context` on its log lines. */
export function withLogContext<T>(context: LogContext, work: () => T): T {
  return current.run(context, work);
}

/** The context of the work in progress, if any (called by the logger for every line). */
export function currentLogContext(): LogContext | undefined {
  return current.getStore();
}

/** The context of handling one stored event: the correlation id its metadata carries, and where it is. */
export function eventLogContext(
  handler: string,
  event: {
    readonly type: string;
    readonly position: number;
    readonly metadata: { readonly correlationId: string; readonly eventId: string };
  },
): LogContext {
  return {
    correlationId: event.metadata.correlationId,
    handler,
    eventId: event.metadata.eventId,
    eventType: event.type,
    position: event.position,
  };
}
