import { JwtService } from '@nestjs/jwt';
import type { AppConfig } from '../config/app-config.js';
import { ALL_SCOPES } from './scopes.js';

export interface TokenRequest {
  readonly subject: string;
  readonly scopes: readonly string[];
  /** Lifetime, e.g. "1h", "30d" (jsonwebtoken's format). */
  readonly expiresIn: string;
}

/**
 * Signs tokens with the configured HS256 secret: for development (the token printed at start) and
 * `npm run token`. With a public key or a JWKS URL the service cannot sign: tokens come from the
 * identity provider that holds the private key.
 */
export function issueToken(config: AppConfig, request: TokenRequest): string {
  const key = config.auth.key;
  if (key.kind !== 'secret') {
    throw new Error('This service verifies tokens with a public key or JWKS: ask your identity provider for a token.');
  }
  return new JwtService().sign(
    { scope: request.scopes.join(' ') },
    {
      secret: key.secret,
      algorithm: 'HS256',
      subject: request.subject,
      expiresIn: request.expiresIn as never,
      ...(config.auth.issuer ? { issuer: config.auth.issuer } : {}),
      ...(config.auth.audience ? { audience: config.auth.audience } : {}),
    },
  );
}

export function developmentToken(config: AppConfig): string {
  return issueToken(config, { subject: 'developer', scopes: ALL_SCOPES, expiresIn: '30d' });
}
