import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import type { Principal } from '../auth/token-verifier.js';

type LoggedRequest = IncomingMessage & Partial<Pick<Request, 'route' | 'originalUrl'>> & { principal?: Principal };
type LoggedResponse = ServerResponse & Partial<Pick<Response, 'locals'>>;

/**
 * One access line per request (pino-http), written when the response finishes or the client goes
 * away: method, route template, path, status, duration, correlation id and actor (the token's
 * subject, once the AuthGuard verified it). No header at all is logged: an Authorization value or a
 * cookie cannot leak through it. Requests refused before routing (a malformed body, an unknown
 * path) get their line too: the middleware runs second, right after the correlation id is settled.
 *
 * Lines written while the request is handled come from the same logger with a `requestId` binding
 * (nestjs-pino puts it in its request scope); their correlation id comes from the log context.
 */
export function httpAccessLog(logger: Logger): RequestHandler {
  return pinoHttp({
    logger,
    quietReqLogger: true, // no request object (with its headers) bound to every line of the request
    quietResLogger: true,
    customAttributeKeys: { reqId: 'requestId' },
    customLogLevel: (_request, response, error) => (error || response.statusCode >= 500 ? 'error' : 'info'),
    customSuccessMessage: (request, response, durationMs) =>
      `${request.method} ${routeOf(request as LoggedRequest) ?? pathOf(request as LoggedRequest)} ${response.statusCode} ${durationMs} ms`,
    customSuccessObject: (request, response, fields) => access(request as LoggedRequest, response, durationOf(fields as object)),
    customErrorMessage: (request, response) =>
      `${request.method} ${routeOf(request as LoggedRequest) ?? pathOf(request as LoggedRequest)} ${response.statusCode} failed`,
    customErrorObject: (request, response, error, fields) => ({
      ...access(request as LoggedRequest, response, durationOf(fields as object)),
      err: error,
    }),
  }) as unknown as RequestHandler;
}

function durationOf(fields: object): number {
  return (fields as { responseTime: number }).responseTime;
}

function access(request: LoggedRequest, response: LoggedResponse, durationMs: number): Record<string, unknown> {
  return {
    method: request.method,
    route: routeOf(request) ?? null, // null: no route matched (404, or refused before routing)
    path: pathOf(request),
    status: response.statusCode,
    durationMs,
    correlationId: response.locals?.correlationId as string | undefined,
    actor: request.principal?.subject ?? null, // null: no verified token
    aborted: response.writableEnded ? undefined : true,
  };
}

/**
 * The route's template (`/accounts/:id/deposits`), as Express matched it. A wildcard is not a
 * route of the API: it is the path nestjs-pino's request-scope middleware is mounted on, which is
 * all Express has matched for an unknown path.
 */
export function routeOf(request: LoggedRequest): string | undefined {
  const path = (request.route as { path?: unknown } | undefined)?.path;
  return typeof path === 'string' && !path.includes('*') ? path : undefined;
}

/** The path without its query string (which is not the place for secrets, but logs need not carry it). */
function pathOf(request: LoggedRequest): string {
  const url = request.originalUrl ?? request.url ?? '';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}
