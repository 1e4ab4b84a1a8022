import { createHash } from 'node:crypto';
import {
  type CallHandler,
  type ExecutionContext,
  Inject,
  Injectable,
  Logger,
  type NestInterceptor,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import { type Observable, from, lastValueFrom } from 'rxjs';
import { DataSource, type EntityManager } from 'typeorm';
import { APP_CONFIG } from '../../config/app-config.provider.js';
import type { AppConfig } from '../../config/app-config.js';
import { EventStore } from '../../event-sourcing/index.js';
import { ProblemException } from '../problem-details/problem.exception.js';

export const IDEMPOTENCY_KEY_HEADER = 'Idempotency-Key';
export const IDEMPOTENT_REPLAYED_HEADER = 'Idempotent-Replayed';
const KEY_FORMAT = /^[\x21-\x7e]{1,255}$/;
/** Namespace of the transaction advisory locks that make a key's second request wait for nothing. */
const LOCK_NAMESPACE = 7_345_003;
/** Response headers worth replaying: the ones commands set. */
const REPLAYED_HEADERS = ['Location', 'ETag'];
const CLEANUP_EVERY_MS = 10 * 60_000;

interface StoredResponse {
  fingerprint: string;
  status_code: number;
  headers: Record<string, string>;
  body: unknown;
}

/**
 * Idempotency-Key for POST commands. The request runs inside one event-store transaction in which
 * the key is locked, looked up, and — when the command succeeds — stored with the response, so the
 * key is recorded exactly when the request's events are:
 * - same key, same method, path and body → the original answer replayed (status, headers, body),
 *   nothing appended again (`Idempotent-Replayed: true`);
 * - same key, anything different → 422 IDEMPOTENCY_KEY_REUSED;
 * - same key while the first request is still running → 409 IDEMPOTENCY_KEY_IN_USE.
 * Refused requests (4xx) are not stored: they wrote nothing, and a retry is decided afresh.
 */
@Injectable()
export class IdempotencyInterceptor implements NestInterceptor, OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(IdempotencyInterceptor.name);
  private cleanup?: NodeJS.Timeout;

  constructor(
    private readonly store: EventStore,
    private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.cleanup = setInterval(() => void this.deleteExpired(), CLEANUP_EVERY_MS).unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.cleanup);
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const http = context.switchToHttp();
    const request = http.getRequest<Request>();
    const key = request.header(IDEMPOTENCY_KEY_HEADER);
    if (request.method !== 'POST' || key === undefined) return next.handle();
    if (!KEY_FORMAT.test(key)) {
      throw new ProblemException(
        400,
        'INVALID_IDEMPOTENCY_KEY',
        'Invalid Idempotency-Key',
        'Idempotency-Key must be 1–255 visible ASCII characters',
      );
    }
    const response = http.getResponse<Response>();
    const fingerprint = fingerprintOf(request);
    // Keys are per client (the verified token's subject): one client's key can neither replay nor
    // block another client's request.
    const subject = (request as Request & { principal?: { subject: string } }).principal?.subject ?? '';
    return from(this.handle(JSON.stringify([subject, key]), fingerprint, response, next));
  }

  private async handle(key: string, fingerprint: string, response: Response, next: CallHandler): Promise<unknown> {
    // A finished request is replayed without taking the lock, so retries never queue behind each other.
    const finished = await this.stored(this.dataSource.manager, key);
    if (finished) return this.replay(finished, fingerprint, response);
    return this.store.transaction(async (tx) => {
      const [{ locked }] = (await tx.manager.query('SELECT pg_try_advisory_xact_lock($1, hashtext($2)) AS locked', [
        LOCK_NAMESPACE,
        key,
      ])) as Array<{ locked: boolean }>;
      if (!locked) {
        throw new ProblemException(
          409,
          'IDEMPOTENCY_KEY_IN_USE',
          'Request in progress',
          'A request with this Idempotency-Key is still being processed; retry shortly',
        );
      }
      const stored = await this.stored(tx.manager, key); // it may have finished meanwhile
      if (stored) return this.replay(stored, fingerprint, response);
      const body: unknown = await lastValueFrom(next.handle(), { defaultValue: undefined });
      await tx.manager.query(
        `INSERT INTO idempotency_keys (key, fingerprint, status_code, headers, body, expires_at)
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(hours => $6))
         ON CONFLICT (key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, status_code = EXCLUDED.status_code,
           headers = EXCLUDED.headers, body = EXCLUDED.body, created_at = now(), expires_at = EXCLUDED.expires_at`,
        [
          key,
          fingerprint,
          response.statusCode,
          JSON.stringify(replayableHeaders(response)),
          JSON.stringify(body ?? null),
          this.config.idempotencyKeyTtlHours,
        ],
      );
      return body;
    });
  }

  private async stored(manager: EntityManager, key: string): Promise<StoredResponse | undefined> {
    const [stored] = (await manager.query(
      'SELECT fingerprint, status_code, headers, body FROM idempotency_keys WHERE key = $1 AND expires_at > now()',
      [key],
    )) as StoredResponse[];
    return stored;
  }

  private replay(stored: StoredResponse, fingerprint: string, response: Response): unknown {
    if (stored.fingerprint !== fingerprint) {
      throw new ProblemException(
        422,
        'IDEMPOTENCY_KEY_REUSED',
        'Idempotency-Key reused',
        'This Idempotency-Key was used for a different request (method, path or body); use a new key for a new request',
      );
    }
    response.status(stored.status_code);
    for (const [name, value] of Object.entries(stored.headers)) response.setHeader(name, value);
    response.setHeader(IDEMPOTENT_REPLAYED_HEADER, 'true');
    return stored.body;
  }

  private async deleteExpired(): Promise<void> {
    try {
      await this.dataSource.query('DELETE FROM idempotency_keys WHERE expires_at < now()');
    } catch (error) {
      this.logger.warn(`Could not delete expired idempotency keys: ${(error as Error).message}`);
    }
  }
}

/** What makes two requests "the same": method, path and the parsed body in a canonical form. */
function fingerprintOf(request: Request): string {
  return createHash('sha256')
    .update(`${request.method} ${request.path}\n${canonicalJson(request.body)}`)
    .digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

function replayableHeaders(response: Response): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of REPLAYED_HEADERS) {
    const value = response.getHeader(name);
    if (value !== undefined) headers[name] = String(value);
  }
  return headers;
}
