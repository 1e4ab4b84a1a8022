import type { NextFunction, Request, Response } from 'express';
import { IDEMPOTENT_REPLAYED_HEADER } from '../../shared/idempotency/idempotency.interceptor.js';
import { routeOf } from '../http-access-log.js';
import type { LedgerMetrics } from './ledger-metrics.js';

/** The `route` of a request no route matched (404s, bodies refused before routing): one series, not one per URL. */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * Times every request from its arrival to the end of its answer. Mounted first (app.factory.ts), so
 * it also counts what is refused before a handler runs (body limits, auth, rate limits). The route
 * label is Express's route template (`/accounts/:id/deposits`), known once routing matched: never the
 * raw URL, whose ids would make a series per account.
 */
export function httpMetrics(metrics: LedgerMetrics) {
  return (request: Request, response: Response, next: NextFunction): void => {
    const stop = metrics.httpRequestDuration.startTimer();
    response.once('finish', () => {
      // routeOf, as the access line: a wildcard layer (middleware Nest binds to every path) is no route.
      stop({
        method: request.method,
        route: routeOf(request) ?? UNMATCHED_ROUTE,
        status_code: String(response.statusCode),
      });
      if (response.getHeader(IDEMPOTENT_REPLAYED_HEADER) === 'true') metrics.idempotencyReplays.inc();
    });
    next();
  };
}
