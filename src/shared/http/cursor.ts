import { ProblemException } from '../problem-details/problem.exception.js';

/** Opaque keyset-pagination cursors: base64url JSON that clients pass back unchanged. */
export function encodeCursor(value: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export function decodeCursor<T>(cursor: string, isValid: (value: unknown) => value is T): T {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (!isValid(value)) {
    throw new ProblemException(400, 'INVALID_CURSOR', 'Invalid cursor', 'cursor must be a value returned as nextCursor by this endpoint');
  }
  return value;
}
