import { Transform } from 'class-transformer';

/**
 * Query parameters arrive as strings. Plain decimal digits become a number; anything else (0x10,
 * 1e1, " 3 ") is left as it is, so @IsInt refuses it instead of Number() reading it loosely.
 */
export function IntegerParam(): PropertyDecorator {
  return Transform(({ value }: { value: unknown }) => (typeof value === 'string' && /^-?\d{1,16}$/.test(value) ? Number(value) : value));
}
