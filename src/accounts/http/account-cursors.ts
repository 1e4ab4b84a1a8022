import { MAX_STREAM_VERSION } from '../account-history/get-account-history.handler.js';

// What each accounts list accepts back as its cursor (decodeCursor refuses anything else with 400
// INVALID_CURSOR): a cursor is opaque to clients, but it is still their input.

/** GET /accounts: the opened position of the last account of the previous page. */
export function isAccountCursor(value: unknown): value is { after: number } {
  const after = (value as { after?: unknown } | null)?.after;
  return typeof after === 'number' && Number.isSafeInteger(after) && after > 0;
}

/** GET /accounts/{id}/transactions: the log position of the last movement of the previous page. */
export function isPositionCursor(value: unknown): value is { before: number } {
  const before = (value as { before?: unknown } | null)?.before;
  return typeof before === 'number' && Number.isSafeInteger(before) && before > 0;
}

/** GET /accounts/{id}/events: the version of the last event of the previous page. */
export function isVersionCursor(value: unknown): value is { afterVersion: number } {
  const afterVersion = (value as { afterVersion?: unknown } | null)?.afterVersion;
  return typeof afterVersion === 'number' && Number.isInteger(afterVersion) && afterVersion > 0 && afterVersion < MAX_STREAM_VERSION;
}
