/**
 * What the writer believes about the stream before appending:
 * - `NO_STREAM`: the stream must not exist yet (creating an aggregate);
 * - `ANY`: no check (use sparingly; still atomic and ordered);
 * - a number: the stream's current version must be exactly this.
 */
export const NO_STREAM = 'no-stream' as const;
export const ANY = 'any' as const;
export type ExpectedVersion = typeof NO_STREAM | typeof ANY | number;

/** The largest version the events.version column (integer) holds. */
export const MAX_STREAM_VERSION = 2_147_483_647;

/** The encoding used by the append statement: -1 = any, 0 = no stream, n = exact. */
export function toSqlExpectedVersion(expected: ExpectedVersion): number {
  if (expected === ANY) return -1;
  if (expected === NO_STREAM) return 0;
  if (!Number.isSafeInteger(expected) || expected < 1) {
    throw new RangeError(`Expected version must be a positive integer, "${NO_STREAM}" or "${ANY}"; got ${expected}`);
  }
  return expected;
}
