import type { ValueTransformer } from 'typeorm';

/**
 * For bigint columns holding money or log positions: pg returns bigint as a string; these values are
 * safe integers (below 2^53), and that is checked on the way in rather than assumed.
 */
export const safeInteger: ValueTransformer = {
  to: (value: number) => value,
  from: (value: string | null) => {
    if (value === null) return null;
    const number = Number(value);
    if (!Number.isSafeInteger(number)) throw new RangeError(`${value} is not a safe integer`);
    return number;
  },
};
