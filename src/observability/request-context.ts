import type { NextFunction, Request, Response } from 'express';
import { withLogContext } from './log-context.js';

/**
 * Runs the rest of the request (guards, handler, the command it sends) in the request's log
 * context: every line written for it carries its correlation id (X-Correlation-Id, settled by the
 * correlationId middleware). Mounted after body parsing: the body parser resumes in the socket's
 * async context, which would lose anything entered before it.
 */
export function requestContext(_request: Request, response: Response, next: NextFunction): void {
  withLogContext({ correlationId: response.locals.correlationId as string }, next);
}
