import type { NextFunction, Request, Response } from 'express';
import { ProblemException } from '../problem-details/problem.exception.js';

/** Deeper than any request of the API (its bodies are one or two levels deep). */
export const MAX_JSON_DEPTH = 32;

/**
 * A lone surrogate (not part of a pair): valid in a JS string, refused by PostgreSQL's jsonb. (NUL,
 * refused too, is a control character: the fields' own validation names the field that has one.)
 */
const UNSTORABLE_TEXT = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * After JSON parsing, before anything walks the body recursively:
 * - nested deeper than MAX_JSON_DEPTH → 400 BODY_TOO_DEEP (validation, class-transformer and the
 *   idempotency fingerprint would overflow the stack on a few kilobytes of brackets);
 * - a string (value or key) that PostgreSQL cannot store → 400 INVALID_TEXT, not a database error.
 * Walked with an explicit stack, so the check itself cannot overflow.
 */
export function jsonBodyGuard(request: Request, _response: Response, next: NextFunction): void {
  next(problemOf(request.body));
}

function problemOf(body: unknown): ProblemException | undefined {
  const pending: Array<[unknown, number]> = [[body, 0]];
  while (pending.length > 0) {
    const [current, depth] = pending.pop()!;
    if (typeof current === 'string') {
      if (UNSTORABLE_TEXT.test(current)) return invalidText();
      continue;
    }
    if (current === null || typeof current !== 'object') continue;
    if (depth >= MAX_JSON_DEPTH) {
      return new ProblemException(
        400,
        'BODY_TOO_DEEP',
        'Body nested too deeply',
        `JSON bodies may be nested at most ${MAX_JSON_DEPTH} levels deep`,
      );
    }
    for (const [key, child] of Object.entries(current)) {
      if (UNSTORABLE_TEXT.test(key)) return invalidText();
      pending.push([child, depth + 1]);
    }
  }
  return undefined;
}

function invalidText(): ProblemException {
  return new ProblemException(400, 'INVALID_TEXT', 'Invalid text', 'Strings must be well-formed Unicode: no unpaired surrogate');
}
