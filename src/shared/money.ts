/**
 * Money is an integer number of minor units (cents for EUR/USD, yen for JPY), never a float.
 * JavaScript numbers are exact integers up to 2^53 - 1, which is the ceiling for any amount or
 * balance; PostgreSQL stores them as bigint.
 */
export const MAX_MINOR_UNITS = Number.MAX_SAFE_INTEGER;

export function isPositiveMinorUnits(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}
