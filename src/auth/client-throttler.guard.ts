import { type ExecutionContext, Injectable } from '@nestjs/common';
import { ThrottlerGuard, type ThrottlerLimitDetail } from '@nestjs/throttler';
import { ProblemException } from '../shared/problem-details/problem.exception.js';
import type { Principal } from './token-verifier.js';

/**
 * Rate limits per client: the verified token's subject (the AuthGuard runs first), else the address.
 * Over the limit: 429 problem+json with Retry-After (seconds).
 */
@Injectable()
export class ClientThrottlerGuard extends ThrottlerGuard {
  protected override async getTracker(request: Record<string, unknown>): Promise<string> {
    const principal = request.principal as Principal | undefined;
    return principal ? `subject:${principal.subject}` : `address:${String(request.ip)}`;
  }

  protected override async throwThrottlingException(_context: ExecutionContext, detail: ThrottlerLimitDetail): Promise<void> {
    throw new ProblemException(
      429,
      'RATE_LIMITED',
      'Too many requests',
      `More than ${detail.limit} requests in ${detail.ttl / 1000} s from this client; retry after ${detail.timeToBlockExpire} s`,
      { limit: detail.limit },
      { 'Retry-After': String(Math.max(1, detail.timeToBlockExpire)) },
    );
  }
}
