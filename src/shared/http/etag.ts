import { type ExecutionContext, createParamDecorator } from '@nestjs/common';
import type { Request } from 'express';
import { ProblemException } from '../problem-details/problem.exception.js';

/** A stream version as a strong entity tag: 3 → "3". */
export function formatEtag(version: number): string {
  return `"${version}"`;
}

const STRONG_VERSION_TAG = /^"([1-9][0-9]{0,9})"$/;

/**
 * The stream version named by an If-Match header: `"3"` → 3; absent or `*` → undefined (no
 * precondition). Anything else is a 400: a precondition we cannot read must not be ignored.
 */
export function parseIfMatch(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (value === '*') return undefined;
  const match = STRONG_VERSION_TAG.exec(value);
  if (!match) {
    throw new ProblemException(
      400,
      'INVALID_IF_MATCH',
      'Invalid If-Match header',
      'If-Match must be a single strong ETag such as "3", as returned in ETag',
    );
  }
  return Number(match[1]);
}

/** Injects the version from If-Match (see parseIfMatch). */
export const IfMatchVersion = createParamDecorator((_data: unknown, context: ExecutionContext) =>
  parseIfMatch(context.switchToHttp().getRequest<Request>().header('if-match')),
);
