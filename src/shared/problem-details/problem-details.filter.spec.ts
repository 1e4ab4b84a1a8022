import { beforeAll, describe, expect, it } from '@jest/globals';
import { type ArgumentsHost, Logger } from '@nestjs/common';
import { AccountNotFoundError, InsufficientFundsError, TransferAlreadyResolvedError } from '../../accounts/account.errors.js';
import {
  ConcurrencyConflictError,
  NO_STREAM,
  NotYetExistingError,
  ProjectionNotCaughtUpError,
  ProjectionNotFailedError,
  ProjectionNotRebuildableError,
  UnitOfWorkConflict,
  UnknownEventTypeError,
  UnknownProjectionError,
  VersionNotReachedError,
  WrongExpectedVersionError,
} from '../../event-sourcing/index.js';
import { ProblemDetailsFilter } from './problem-details.filter.js';
import { problemType } from './problem-details.js';

// Every error a caller can meet, answered by its kind (status, headers) and code (wording): the exact
// status, headers and body the e2e suites rely on, pinned here for each error class in one place.

interface Answered {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

function answer(error: unknown): Answered {
  const answered: Answered = { status: 0, headers: {}, body: {} };
  const response = {
    headersSent: false,
    status: (status: number) => void (answered.status = status),
    setHeader: (name: string, value: string) => void (answered.headers[name] = value),
    type: () => response,
    send: (text: string) => void (answered.body = JSON.parse(text)),
  };
  const host = { switchToHttp: () => ({ getResponse: () => response }) } as unknown as ArgumentsHost;
  new ProblemDetailsFilter().catch(error, host);
  return answered;
}

const type = problemType;

describe('ProblemDetailsFilter: kinded errors', () => {
  it("a stale If-Match (the store's WRONG_EXPECTED_VERSION) is 412 VERSION_MISMATCH with the current ETag", () => {
    expect(answer(new WrongExpectedVersionError('account-1', 3, 5))).toEqual({
      status: 412,
      headers: { ETag: '"5"' },
      body: {
        type: type('VERSION_MISMATCH'),
        title: 'Precondition failed',
        status: 412,
        detail: 'If-Match expected version 3, but the current version is 5',
        code: 'VERSION_MISMATCH',
        expectedVersion: 3,
        currentVersion: 5,
      },
    });
  });

  it('a lost race is 409 CONCURRENCY_CONFLICT, telling the caller to retry', () => {
    const error = new ConcurrencyConflictError('account-1', 5);
    expect(answer(error)).toEqual({
      status: 409,
      headers: {},
      body: {
        type: type('CONCURRENCY_CONFLICT'),
        title: 'Concurrent modification',
        status: 409,
        detail: `${error.message}; retry the request`,
        code: 'CONCURRENCY_CONFLICT',
      },
    });
  });

  it('a projection that did not catch up is 503 with Retry-After and where it stands', () => {
    const error = new ProjectionNotCaughtUpError('account-summary', 40, 38, 2000);
    expect(answer(error)).toEqual({
      status: 503,
      headers: { 'Retry-After': '1' },
      body: {
        type: type('PROJECTION_NOT_CAUGHT_UP'),
        title: 'Projection not caught up',
        status: 503,
        detail: `${error.message}; retry shortly`,
        code: 'PROJECTION_NOT_CAUGHT_UP',
        projection: 'account-summary',
        minPosition: 40,
        position: 38,
      },
    });
  });

  it.each([
    ['UNKNOWN_PROJECTION', 404, 'Unknown projection', new UnknownProjectionError('nope'), {}],
    ['PROJECTION_NOT_FAILED', 409, 'Projection not failed', new ProjectionNotFailedError('p'), {}],
    ['PROJECTION_NOT_REBUILDABLE', 409, 'Projection not rebuildable', new ProjectionNotRebuildableError('p'), {}],
    ['VERSION_NOT_FOUND', 404, 'Version not found', new VersionNotReachedError('account-1', 9, 4), { requested: 9, currentVersion: 4 }],
    [
      'NOT_YET_EXISTING',
      404,
      'Not yet existing',
      new NotYetExistingError('account-1', new Date('2026-01-01T00:00:00Z'), new Date('2026-02-01T00:00:00.000Z')),
      { firstRecordedAt: '2026-02-01T00:00:00.000Z' },
    ],
    ['ACCOUNT_NOT_FOUND', 404, 'Account not found', new AccountNotFoundError('a'), { accountId: 'a' }],
    [
      'ACCOUNT_INSUFFICIENT_FUNDS',
      422,
      'Account insufficient funds',
      new InsufficientFundsError('a', 5, 7),
      { accountId: 'a', balance: 5, requested: 7 },
    ],
    [
      'ACCOUNT_TRANSFER_ALREADY_RESOLVED',
      409,
      'Account transfer already resolved',
      new TransferAlreadyResolvedError('a', 't', 'refund'),
      { accountId: 'a', transferId: 't' },
    ],
  ] as const)('%s is %i', (code, status, title, error, members) => {
    expect(answer(error)).toEqual({
      status,
      headers: {},
      body: { type: type(code), title, status, detail: error.message, code, ...members },
    });
  });
});

describe('ProblemDetailsFilter: errors without a kind are a logged 500 that leaks nothing', () => {
  beforeAll(() => Logger.overrideLogger(false)); // the 500s are logged on purpose here

  it.each([
    ['UnitOfWorkConflict (internal: the unit of work turns it into CONCURRENCY_CONFLICT)', new UnitOfWorkConflict('account-1', 'lost')],
    ['an unknown event type', new UnknownEventTypeError('x.Y')],
    ['an error with a kind the table does not know', Object.assign(new Error('odd'), { kind: 'teapot', code: 'ODD', details: {} })],
    ['a plain error', new Error(`expected ${NO_STREAM}`)],
  ])('%s', (_name, error) => {
    const answered = answer(error);
    expect(answered.status).toBe(500);
    expect(answered.body).toEqual({
      type: type('INTERNAL_ERROR'),
      title: 'Internal server error',
      status: 500,
      detail: 'An unexpected error occurred; it has been logged',
      code: 'INTERNAL_ERROR',
    });
  });
});
