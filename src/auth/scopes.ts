import { SetMetadata, applyDecorators } from '@nestjs/common';
import { ApiBearerAuth } from '@nestjs/swagger';
import { SkipThrottle } from '@nestjs/throttler';
import { ApiProblemResponses } from '../shared/http/api-problem-responses.decorator.js';

/**
 * The scopes of the API: commands, queries, the event feed and operations are granted (and secured)
 * separately. Reading the global feed is `ledger:events` and nothing else: a consumer of the feed
 * needs no power over projections (rebuild, retry, skip), and `ledger:admin` does not read the feed.
 */
export const SCOPES = {
  commands: 'ledger:commands',
  queries: 'ledger:queries',
  admin: 'ledger:admin',
  events: 'ledger:events',
} as const;
export type Scope = (typeof SCOPES)[keyof typeof SCOPES];
export const ALL_SCOPES: readonly Scope[] = Object.values(SCOPES);

export const REQUIRED_SCOPE = Symbol('required-scope');

const AUTH_PROBLEMS = {
  401: 'UNAUTHENTICATED (no bearer token), INVALID_TOKEN (bad signature, expired or without exp, wrong issuer or audience)',
  403: 'INSUFFICIENT_SCOPE: the token lacks the scope this endpoint needs',
  429: 'RATE_LIMITED: too many requests from this client; retry after Retry-After seconds',
};

function requires(scope: Scope, throttledAs: 'commands' | 'queries'): MethodDecorator & ClassDecorator {
  return applyDecorators(
    SetMetadata(REQUIRED_SCOPE, scope),
    ApiBearerAuth(),
    ApiProblemResponses(AUTH_PROBLEMS),
    // Commands and queries draw from separate rate-limit budgets.
    SkipThrottle({ [throttledAs === 'commands' ? 'queries' : 'commands']: true }),
  );
}

/** Changes state: needs `ledger:commands`; counted against the commands budget. */
export const CommandEndpoint = () => requires(SCOPES.commands, 'commands');
/** Reads: needs `ledger:queries`; counted against the queries budget. */
export const QueryEndpoint = () => requires(SCOPES.queries, 'queries');
/** Operates the service (projections: status, rebuild, retry, skip): needs `ledger:admin`. */
export const AdminEndpoint = () => requires(SCOPES.admin, 'queries');
/** Reads the global event log (`GET /events`, `/events/live`): needs `ledger:events`; counted as queries. */
export const EventsEndpoint = () => requires(SCOPES.events, 'queries');
