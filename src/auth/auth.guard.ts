import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { ProblemException } from '../shared/problem-details/problem.exception.js';
import { PUBLIC_ENDPOINT } from './public-endpoint.js';
import { REQUIRED_SCOPE, type Scope } from './scopes.js';
import { InvalidTokenError, type Principal, TokenVerifier } from './token-verifier.js';

const REALM = 'Bearer realm="ledger"';

/**
 * Every route needs a bearer token with the scope its controller declares (CommandEndpoint,
 * QueryEndpoint, EventsEndpoint, AdminEndpoint); a route that declares none is refused, so forgetting to secure one
 * fails closed. It sets `request.principal` and nothing else: RequestMetadata reads it to make the
 * token's subject the actor of the command the request sends.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly verifier: TokenVerifier,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<Request & { principal?: Principal }>();
    if (this.reflector.getAllAndOverride<boolean | undefined>(PUBLIC_ENDPOINT, [context.getHandler(), context.getClass()])) return true;
    const scope = this.reflector.getAllAndOverride<Scope | undefined>(REQUIRED_SCOPE, [context.getHandler(), context.getClass()]);
    const header = request.header('authorization');
    const token = header?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
    if (!token) {
      throw new ProblemException(
        401,
        'UNAUTHENTICATED',
        'Authentication required',
        'Send a bearer token: Authorization: Bearer <token>',
        {},
        { 'WWW-Authenticate': REALM },
      );
    }
    let principal: Principal;
    try {
      principal = await this.verifier.verify(token);
    } catch (error) {
      if (!(error instanceof InvalidTokenError)) throw error;
      throw new ProblemException(
        401,
        'INVALID_TOKEN',
        'Invalid token',
        `The bearer token was refused: ${error.message}`,
        {},
        {
          'WWW-Authenticate': `${REALM}, error="invalid_token"`,
        },
      );
    }
    if (!scope || !principal.scopes.has(scope)) {
      throw new ProblemException(
        403,
        'INSUFFICIENT_SCOPE',
        'Insufficient scope',
        scope ? `This endpoint needs the scope ${scope}` : 'This endpoint is not open to any scope',
        { requiredScope: scope ?? null },
        {
          'WWW-Authenticate': `${REALM}, error="insufficient_scope"${scope ? `, scope="${scope}"` : ''}`,
        },
      );
    }
    request.principal = principal;
    return true;
  }
}
