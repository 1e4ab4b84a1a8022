import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { Response } from 'express';
import {
  ConcurrencyConflictError,
  ProjectionNotCaughtUpError,
  ProjectionNotFailedError,
  NotYetExistingError,
  ProjectionNotRebuildableError,
  UnknownProjectionError,
  VersionNotReachedError,
  WrongExpectedVersionError,
} from '../../event-sourcing/index.js';
import { DomainError, type DomainErrorKind } from '../domain-error.js';
import { formatEtag } from '../http/etag.js';
import { PROBLEM_CONTENT_TYPE, type ProblemDetails, problemType } from './problem-details.js';
import { ProblemException } from './problem.exception.js';

const STATUS_OF_KIND: Record<DomainErrorKind, number> = {
  'not-found': HttpStatus.NOT_FOUND,
  'rule-violated': HttpStatus.UNPROCESSABLE_ENTITY,
  conflict: HttpStatus.CONFLICT,
};

/** body-parser's error types, kept as the cause of the HttpException Nest maps them to. */
const BODY_PARSER_PROBLEMS: Record<string, { status: number; code: string; title: string; detail?: string }> = {
  'entity.parse.failed': { status: 400, code: 'MALFORMED_JSON', title: 'Malformed JSON', detail: 'The request body is not valid JSON' },
  'entity.too.large': { status: 413, code: 'PAYLOAD_TOO_LARGE', title: 'Payload too large' },
  'encoding.unsupported': { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', title: 'Unsupported content encoding' },
  'charset.unsupported': { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', title: 'Unsupported charset' },
  'request.aborted': { status: 400, code: 'REQUEST_ABORTED', title: 'Request aborted' },
  'request.size.invalid': { status: 400, code: 'REQUEST_SIZE_INVALID', title: 'Request size invalid' },
};

const CODE_OF_STATUS: Record<number, string> = {
  400: 'BAD_REQUEST',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  406: 'NOT_ACCEPTABLE',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
};

interface Answer {
  problem: ProblemDetails;
  headers?: Record<string, string>;
}

function answer(status: number, code: string, title: string, detail: string, extensions: Record<string, unknown> = {}): Answer {
  return { problem: { type: problemType(code), title, status, detail, code, ...extensions } };
}

/**
 * The one place where errors become HTTP answers: every error is `application/problem+json` with a
 * stable code. Anything unexpected is logged and answered with a generic 500 that leaks nothing.
 */
@Catch()
export class ProblemDetailsFilter implements ExceptionFilter {
  private readonly logger = new Logger('HTTP');

  catch(error: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    const { problem, headers } = this.toAnswer(error);
    if (response.headersSent) {
      response.end();
      return;
    }
    response.status(problem.status);
    for (const [name, value] of Object.entries(headers ?? {})) response.setHeader(name, value);
    response.type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem));
  }

  private toAnswer(error: unknown): Answer {
    if (error instanceof ProblemException) {
      return { problem: error.getResponse() as ProblemDetails, headers: error.headers };
    }
    if (error instanceof DomainError) {
      return answer(STATUS_OF_KIND[error.kind], error.code, titleOf(error.code), error.message, error.details);
    }
    if (error instanceof WrongExpectedVersionError) {
      return {
        ...answer(412, 'VERSION_MISMATCH', 'Precondition failed', `If-Match expected version ${String(error.expectedVersion)}, but the current version is ${error.actualVersion}`, {
          expectedVersion: error.expectedVersion,
          currentVersion: error.actualVersion,
        }),
        headers: { ETag: formatEtag(error.actualVersion) },
      };
    }
    if (error instanceof ConcurrencyConflictError) {
      return answer(409, 'CONCURRENCY_CONFLICT', 'Concurrent modification', `${error.message}; retry the request`);
    }
    if (error instanceof ProjectionNotCaughtUpError) {
      return {
        ...answer(503, error.code, 'Projection not caught up', `${error.message}; retry shortly`, {
          projection: error.projectionName,
          minPosition: error.minPosition,
          position: error.position,
        }),
        headers: { 'Retry-After': '1' },
      };
    }
    if (error instanceof UnknownProjectionError) return answer(404, error.code, 'Unknown projection', error.message);
    if (error instanceof ProjectionNotFailedError) return answer(409, error.code, 'Projection not failed', error.message);
    if (error instanceof ProjectionNotRebuildableError) return answer(409, error.code, 'Projection not rebuildable', error.message);
    if (error instanceof VersionNotReachedError) {
      return answer(404, error.code, 'Version not found', error.message, { requested: error.requested, currentVersion: error.currentVersion });
    }
    if (error instanceof NotYetExistingError) {
      return answer(404, error.code, 'Not yet existing', error.message, { firstRecordedAt: error.firstRecordedAt.toISOString() });
    }
    if (error instanceof HttpException) return this.fromHttpException(error);
    this.logger.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    return answer(500, 'INTERNAL_ERROR', 'Internal server error', 'An unexpected error occurred; it has been logged');
  }

  private fromHttpException(error: HttpException): Answer {
    const cause = error.cause as { type?: string } | undefined;
    const parserProblem = cause?.type ? BODY_PARSER_PROBLEMS[cause.type] : undefined;
    if (parserProblem) {
      return answer(parserProblem.status, parserProblem.code, parserProblem.title, parserProblem.detail ?? error.message);
    }
    const status = error.getStatus();
    const body = error.getResponse();
    const message = typeof body === 'string' ? body : (body as { message?: unknown }).message;
    const detail = Array.isArray(message) ? message.join('; ') : typeof message === 'string' ? message : error.message;
    const code = status === 404 ? 'ROUTE_NOT_FOUND' : (CODE_OF_STATUS[status] ?? `HTTP_${status}`);
    if (status >= 500) this.logger.error(error.stack ?? error.message);
    return answer(status, code, titleOf(code), status >= 500 ? 'An unexpected error occurred' : detail);
  }
}

/** ACCOUNT_INSUFFICIENT_FUNDS → "Account insufficient funds". */
function titleOf(code: string): string {
  const words = code.toLowerCase().replaceAll('_', ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}
