import pg from 'pg';

/**
 * Values written into SQL text as literals, for the two messages that must carry a statement and
 * its COMMIT together (ledger_fence, ledger_advance_checkpoint): the simple query protocol, which
 * runs both, takes no parameters. Everywhere else values are bound parameters.
 */

/** A string as a quoted literal: the driver's quoting, right with standard_conforming_strings on or off. */
export const textLiteral: (value: string) => string = pg.escapeLiteral;

/**
 * A whole number as SQL text (what a bigint, an xid8 or a position must be), refusing anything else:
 * BigInt() alone would take '', ' ', '0x3' and '3 ' (found in review; harmless, as its output is
 * always plain digits, but not what the caller meant).
 */
export function wholeNumberLiteral(value: string | number): string {
  const valid = typeof value === 'number' ? Number.isSafeInteger(value) : /^-?\d+$/.test(value);
  if (!valid) throw new RangeError(`not a whole number: ${JSON.stringify(value)}`);
  return BigInt(value).toString();
}

/** A finite number as SQL text, refusing NaN and infinities (which would print as words). */
export function finiteNumberLiteral(value: number): string {
  if (!Number.isFinite(value)) throw new RangeError(`not a finite number: ${value}`);
  return String(value);
}
