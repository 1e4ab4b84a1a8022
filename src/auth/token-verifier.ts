import { Inject, Injectable } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';
import { KeyObject, type webcrypto } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader } from 'jose';
import { APP_CONFIG } from '../config/app-config.provider.js';
import type { AppConfig } from '../config/app-config.js';

export interface Principal {
  /** The token's subject: recorded as the actor of every event it causes. */
  readonly subject: string;
  readonly scopes: ReadonlySet<string>;
}

export class InvalidTokenError extends Error {}

/** jsonwebtoken's own refusals: their messages describe the token and are safe to show. */
const VERIFICATION_ERRORS = new Set(['JsonWebTokenError', 'TokenExpiredError', 'NotBeforeError']);
/** Anything else (a library tripping over an odd payload) is only ever "malformed": no internals leak. */
const MALFORMED = 'the token is malformed';

/**
 * Verifies bearer tokens with the configured key: an HS256 secret, an RS256/ES256 public key, or the
 * keys published at a JWKS URL (jose fetches and caches them, picks one by the token's `kid` and
 * `alg`, and refetches — at most every 30 s — when a token names a key it does not know: rotation).
 * Scopes come from the standard `scope` claim (space-separated) or a `scopes` array.
 */
@Injectable()
export class TokenVerifier {
  private readonly jwks?: ReturnType<typeof createRemoteJWKSet>;

  constructor(
    private readonly jwt: JwtService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    const key = config.auth.key;
    if (key.kind === 'jwks') this.jwks = createRemoteJWKSet(new URL(key.jwksUrl), { cooldownDuration: 30_000, timeoutDuration: 5_000 });
  }

  async verify(token: string): Promise<Principal> {
    let payload: { sub?: unknown; scope?: unknown; scopes?: unknown };
    try {
      payload = await this.jwt.verifyAsync(token, {
        algorithms: [...this.config.auth.algorithms],
        issuer: this.config.auth.issuer,
        audience: this.config.auth.audience,
        secret: await this.keyFor(token),
      });
    } catch (error) {
      if (error instanceof InvalidTokenError) throw error;
      throw new InvalidTokenError(error instanceof Error && VERIFICATION_ERRORS.has(error.name) ? error.message : MALFORMED);
    }
    if (typeof payload !== 'object' || payload === null) throw new InvalidTokenError(MALFORMED);
    if (typeof payload.sub !== 'string' || payload.sub === '') throw new InvalidTokenError('the token has no subject (sub)');
    const scopes =
      typeof payload.scope === 'string'
        ? payload.scope.split(' ')
        : Array.isArray(payload.scopes)
          ? payload.scopes.filter((scope): scope is string => typeof scope === 'string')
          : [];
    return { subject: payload.sub, scopes: new Set(scopes.filter(Boolean)) };
  }

  private async keyFor(token: string): Promise<string> {
    const key = this.config.auth.key;
    if (key.kind === 'secret') return key.secret;
    if (key.kind === 'public-key') return key.publicKey;
    try {
      const signingKey = await this.jwks!(decodeProtectedHeader(token));
      // The signature itself is checked by @nestjs/jwt, like every other token: hand it the key as PEM.
      return KeyObject.from(signingKey as webcrypto.CryptoKey).export({ type: 'spki', format: 'pem' }).toString();
    } catch (error) {
      // jose's errors (codes ERR_J…) describe the token or the key set; anything else stays generic.
      const known = typeof (error as { code?: unknown }).code === 'string' && (error as { code: string }).code.startsWith('ERR_J');
      throw new InvalidTokenError(`no signing key for this token${known ? `: ${(error as Error).message}` : ''}`);
    }
  }
}
