import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { Response } from 'express';
import { type ErrorKind, type KindedError, isKindedError } from '../../event-sourcing/index.js';
import { formatEtag } from '../http/etag.js';
import { PROBLEM_CONTENT_TYPE, type ProblemDetails, problemType } from './problem-details.js';
import { ProblemException } from './problem.exception.js';

/** The one map from an error's kind to its HTTP status, and the headers that kind answers with. */
const ANSWER_OF_KIND: Record<ErrorKind, { status: number; headers?: (error: KindedError) => Record<string, string> }> = {
  'not-found': { status: 404 },
  'rule-violated': { status: 422 },
  conflict: { status: 409 },
  // The current version, so that the caller can decide again on it.
  'precondition-failed': { status: 412, headers: (error) => ({ ETag: formatEtag(error.details.currentVersion as number) }) },
  unavailable: { status: 503, headers: () => ({ 'Retry-After': '1' }) },
};

/**
 * Where the answer words an error differently from the error itself (by its code): the event
 * store's WRONG_EXPECTED_VERSION is, to an HTTP caller, their If-Match not matching; the others say
 * what to do next. Any other kinded error answers its own code, message and a title made of its code.
 */
const WORDING: Record<string, { code?: string; title?: string; detail?: (error: KindedError) => string }> = {
  WRONG_EXPECTED_VERSION: {
    code: 'VERSION_MISMATCH',
    title: 'Precondition failed',
    detail: ({ details }) =>
      `If-Match expected version ${String(details.expectedVersion)}, but the current version is ${String(details.currentVersion)}`,
  },
  CONCURRENCY_CONFLICT: { title: 'Concurrent modification', detail: (error) => `${error.message}; retry the request` },
  PROJECTION_NOT_CAUGHT_UP: { detail: (error) => `${error.message}; retry shortly` },
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
    if (isKindedError(error) && Object.hasOwn(ANSWER_OF_KIND, error.kind)) return fromKindedError(error);
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

/** A domain or core error: status and headers by its kind, wording by its code, its facts as members. */
function fromKindedError(error: KindedError): Answer {
  const { status, headers } = ANSWER_OF_KIND[error.kind];
  const wording = WORDING[error.code] ?? {};
  const code = wording.code ?? error.code;
  const title = wording.title ?? titleOf(code);
  return {
    ...answer(status, code, title, wording.detail?.(error) ?? error.message, error.details),
    ...(headers ? { headers: headers(error) } : {}),
  };
}

/** ACCOUNT_INSUFFICIENT_FUNDS → "Account insufficient funds". */
function titleOf(code: string): string {
  const words = code.toLowerCase().replaceAll('_', ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}
