import { randomUUID } from 'node:crypto';
import { type ExecutionContext, createParamDecorator } from '@nestjs/common';
import type { Request, Response } from 'express';
import type { Principal } from '../../auth/token-verifier.js';
import type { CommandMetadata } from '../../event-sourcing/index.js';

/**
 * The metadata of the command a request sends: its correlation id (X-Correlation-Id, set by the
 * correlationId middleware), a fresh id of this request as the causation, and the verified token's
 * subject as the actor (the AuthGuard, which runs before any parameter is resolved, put the
 * principal on the request). The controller passes it into the command; nothing else carries it.
 */
export const RequestMetadata = createParamDecorator((_data: unknown, context: ExecutionContext): CommandMetadata => {
  const http = context.switchToHttp();
  const request = http.getRequest<Request & { principal?: Principal }>();
  const response = http.getResponse<Response>();
  return {
    correlationId: response.locals.correlationId as string,
    causationId: randomUUID(),
    actor: request.principal?.subject ?? 'anonymous',
  };
});
