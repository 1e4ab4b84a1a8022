import { KeyObject, createPublicKey, createSecretKey, type webcrypto } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';
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
/** Tokens remembered as verified (a client sends the same one on every request until it expires). */
const VERIFIED_CACHE_SIZE = 1_000;

interface Verified {
  readonly principal: Principal;
  /** The token's `exp`, in seconds since the epoch: from then on it is refused, as jsonwebtoken does. */
  readonly exp: number;
}

/**
 * Verifies bearer tokens with the configured key: an HS256 secret, an RS256/ES256 public key, or the
 * keys published at a JWKS URL (jose fetches and caches them, picks one by the token's `kid` and
 * `alg`, and refetches — at most every 30 s — when a token names a key it does not know: rotation).
 * Scopes come from the standard `scope` claim (space-separated) or a `scopes` array. Every token must
 * expire (`exp`).
 */
@Injectable()
export class TokenVerifier {
  private readonly jwks?: ReturnType<typeof createRemoteJWKSet>;
  /**
   * The secret or public key, made a KeyObject once: given a string, jsonwebtoken would try (and fail)
   * to parse it as a public key on every request before making it a secret key — measured at about
   * 15% of a deposit's CPU time (docs/BENCHMARKS.md).
   */
  private readonly configuredKey?: KeyObject;
  /**
   * Tokens this verifier accepted with the configured key, by their exact text (signature included,
   * so no other token can match one), until their `exp`: the same token from the same client is not
   * decoded, HMAC'd and checked again on every request (about 5 % of a deposit's CPU,
   * bench/analysis.md). Only with a configured key, which never changes while the process runs; a
   * JWKS key may be withdrawn from the set, so those tokens are verified every time.
   */
  private readonly verified = new Map<string, Verified>();

  constructor(
    private readonly jwt: JwtService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    const key = config.auth.key;
    if (key.kind === 'secret') this.configuredKey = createSecretKey(Buffer.from(key.secret, 'utf8'));
    if (key.kind === 'public-key') this.configuredKey = createPublicKey(key.publicKey);
    if (key.kind === 'jwks') this.jwks = createRemoteJWKSet(new URL(key.jwksUrl), { cooldownDuration: 30_000, timeoutDuration: 5_000 });
  }

  async verify(token: string): Promise<Principal> {
    const known = this.verified.get(token);
    if (known) {
      // jsonwebtoken's own test: expired from the second `exp` names (no clock tolerance is set).
      if (Math.floor(Date.now() / 1000) < known.exp) return known.principal;
      this.verified.delete(token); // verified again below, which refuses it as expired
    }
    // A token refused now (expired, not yet valid, bad signature…) throws here and is never remembered.
    const verified = await this.verifyFully(token);
    if (this.configuredKey) this.remember(token, verified);
    return verified.principal;
  }

  private remember(token: string, verified: Verified): void {
    if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!); // the oldest
    this.verified.set(token, verified);
  }

  private async verifyFully(token: string): Promise<Verified> {
    let payload: { sub?: unknown; scope?: unknown; scopes?: unknown; exp?: unknown };
    try {
      payload = await this.jwt.verifyAsync(token, {
        algorithms: [...this.config.auth.algorithms],
        issuer: this.config.auth.issuer,
        audience: this.config.auth.audience,
        // @nestjs/jwt hands the key to jsonwebtoken as it is, which takes KeyObjects; its types say string | Buffer.
        secret: (await this.keyFor(token)) as unknown as Buffer,
      });
    } catch (error) {
      if (error instanceof InvalidTokenError) throw error;
      throw new InvalidTokenError(error instanceof Error && VERIFICATION_ERRORS.has(error.name) ? error.message : MALFORMED);
    }
    if (typeof payload !== 'object' || payload === null) throw new InvalidTokenError(MALFORMED);
    if (typeof payload.sub !== 'string' || payload.sub === '') throw new InvalidTokenError('the token has no subject (sub)');
    // jsonwebtoken checks exp only when present: a token without one would be valid forever, a leaked
    // credential that can never be taken back. (When present, it is a number: jsonwebtoken refuses others.)
    if (typeof payload.exp !== 'number') throw new InvalidTokenError('the token has no expiry (exp)');
    const scopes =
      typeof payload.scope === 'string'
        ? payload.scope.split(' ')
        : Array.isArray(payload.scopes)
          ? payload.scopes.filter((scope): scope is string => typeof scope === 'string')
          : [];
    return { principal: { subject: payload.sub, scopes: new Set(scopes.filter(Boolean)) }, exp: payload.exp };
  }

  private async keyFor(token: string): Promise<KeyObject> {
    if (this.configuredKey) return this.configuredKey;
    try {
      const signingKey = await this.jwks!(decodeProtectedHeader(token));
      // The signature itself is checked by @nestjs/jwt, like every other token's.
      return KeyObject.from(signingKey as webcrypto.CryptoKey);
    } catch (error) {
      // jose's errors (codes ERR_J…) describe the token or the key set; anything else stays generic.
      const known = typeof (error as { code?: unknown }).code === 'string' && (error as { code: string }).code.startsWith('ERR_J');
      throw new InvalidTokenError(`no signing key for this token${known ? `: ${(error as Error).message}` : ''}`);
    }
  }
}
