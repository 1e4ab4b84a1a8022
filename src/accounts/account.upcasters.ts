import type { Upcaster } from '../event-sourcing/domain.js';

/**
 * Older schema versions of account events, turned into the current shape on every read (the
 * aggregate, the projections, the history endpoints and the feed all see version 2). Stored events
 * are never rewritten: the store is append-only.
 */
export const ACCOUNT_UPCASTERS: Upcaster[] = [
  // v1 → v2: deposits and withdrawals gained an optional free-text `reference`.
  { type: 'accounts.MoneyDeposited', fromVersion: 1, upcast: (data) => ({ ...data, reference: null }) },
  { type: 'accounts.MoneyWithdrawn', fromVersion: 1, upcast: (data) => ({ ...data, reference: null }) },
];
