import { SetMetadata, applyDecorators } from '@nestjs/common';
import { ApiBearerAuth } from '@nestjs/swagger';
import { SkipThrottle } from '@nestjs/throttler';
import { ApiProblemResponses } from '../shared/http/api-problem-responses.decorator.js';

/** The three scopes of the API: commands and queries can be granted (and secured) separately. */
export const SCOPES = {
  commands: 'ledger:commands',
  queries: 'ledger:queries',
  admin: 'ledger:admin',
} as const;
export type Scope = (typeof SCOPES)[keyof typeof SCOPES];
export const ALL_SCOPES: readonly Scope[] = Object.values(SCOPES);

export const REQUIRED_SCOPE = Symbol('required-scope');

const AUTH_PROBLEMS = {
  401: 'UNAUTHENTICATED (no bearer token), INVALID_TOKEN (bad signature, expired, wrong issuer or audience)',
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
/** Operates the service (projections, the global feed): needs `ledger:admin`. */
export const AdminEndpoint = () => requires(SCOPES.admin, 'queries');
