import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';

export const CORRELATION_HEADER = 'X-Correlation-Id';
const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * First middleware: takes the caller's X-Correlation-Id (or makes one) and echoes it, so that every
 * answer carries it, errors from body parsing included. Commands get it through RequestMetadata.
 */
export function correlationId(request: Request, response: Response, next: NextFunction): void {
  const given = request.header(CORRELATION_HEADER);
  response.locals.correlationId = given && ACCEPTABLE_ID.test(given) ? given : randomUUID();
  response.setHeader(CORRELATION_HEADER, response.locals.correlationId as string);
  next();
}
