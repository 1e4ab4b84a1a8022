import type { NextFunction, Request, Response } from 'express';
import { ProblemException } from '../problem-details/problem.exception.js';

/** Deeper than any request of the API (its bodies are one or two levels deep). */
export const MAX_JSON_DEPTH = 32;

/**
 * After JSON parsing: a body nested deeper than MAX_JSON_DEPTH is a 400 before anything walks it
 * recursively (validation, class-transformer, the idempotency fingerprint would overflow the stack on
 * a few kilobytes of brackets). Measured with an explicit stack, so the check itself cannot overflow.
 */
export function jsonDepthLimit(request: Request, _response: Response, next: NextFunction): void {
  if (depthExceeds(request.body, MAX_JSON_DEPTH)) {
    next(new ProblemException(400, 'BODY_TOO_DEEP', 'Body nested too deeply', `JSON bodies may be nested at most ${MAX_JSON_DEPTH} levels deep`));
    return;
  }
  next();
}

function depthExceeds(value: unknown, limit: number): boolean {
  const pending: Array<[unknown, number]> = [[value, 0]];
  while (pending.length > 0) {
    const [current, depth] = pending.pop()!;
    if (current === null || typeof current !== 'object') continue;
    if (depth >= limit) return true;
    for (const child of Object.values(current)) pending.push([child, depth + 1]);
  }
  return false;
}
