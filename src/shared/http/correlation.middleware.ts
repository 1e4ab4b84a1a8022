import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { currentEventContext, runInEventContext } from '../../event-sourcing/index.js';

export const CORRELATION_HEADER = 'X-Correlation-Id';
const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * First middleware: takes the caller's X-Correlation-Id (or makes one) and echoes it, so that every
 * answer carries it, errors from body parsing included.
 */
export function correlationId(request: Request, response: Response, next: NextFunction): void {
  const given = request.header(CORRELATION_HEADER);
  response.locals.correlationId = given && ACCEPTABLE_ID.test(given) ? given : randomUUID();
  response.setHeader(CORRELATION_HEADER, response.locals.correlationId as string);
  next();
}

/**
 * After body parsing (whose stream callbacks would lose an AsyncLocalStorage scope): runs the rest of
 * the request in an event context, so every event it appends records the correlation id and a fresh
 * request id as its causation.
 */
export function eventContext(_request: Request, response: Response, next: NextFunction): void {
  // The actor is filled in by the AuthGuard once the bearer token is verified.
  const context: RequestEventContext = { correlationId: response.locals.correlationId as string, causationId: randomUUID(), actor: 'anonymous' };
  runInEventContext(context, next);
}

interface RequestEventContext {
  readonly correlationId: string;
  readonly causationId: string;
  actor: string;
}

/** Records who is asking (the verified token's subject) as the actor of this request's events. */
export function setRequestActor(actor: string): void {
  const context = currentEventContext() as RequestEventContext | undefined;
  if (context) context.actor = actor;
}
