import { type Span, SpanStatusCode } from '@opentelemetry/api';
import type { NextFunction, Request, Response } from 'express';
import { routeOf } from './http-access-log.js';
import { withLogContext } from './log-context.js';
import { SpanKind, context, contextFrom, startSpan, trace, tracingOn } from './spans.js';

/**
 * Runs the rest of the request (guards, handler, the command it sends) in the request's log
 * context: every line written for it carries its correlation id (X-Correlation-Id, settled by the
 * correlationId middleware). Tracing, also in the request's server span, a child of the caller's
 * `traceparent` when it sent one, ended when the response closes. Mounted after body parsing: the
 * body parser resumes in the socket's async context, which would lose anything entered before it.
 */
export function requestContext(request: Request, response: Response, next: NextFunction): void {
  const correlationId = response.locals.correlationId as string;
  if (!tracingOn()) {
    withLogContext({ correlationId }, next);
    return;
  }
  const parent = contextFrom(request.headers);
  const span = startSpan(request.method, {
    kind: SpanKind.SERVER,
    parent,
    attributes: { 'http.request.method': request.method, 'url.path': request.path, 'ledger.correlation_id': correlationId },
  });
  response.once('close', () => endRequestSpan(span, request, response));
  withLogContext({ correlationId, traceId: span.spanContext().traceId }, () => context.with(trace.setSpan(parent, span), next));
}

function endRequestSpan(span: Span, request: Request, response: Response): void {
  const route = routeOf(request);
  if (route !== undefined) {
    span.updateName(`${request.method} ${route}`);
    span.setAttribute('http.route', route);
  }
  span.setAttribute('http.response.status_code', response.statusCode);
  if (response.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}
