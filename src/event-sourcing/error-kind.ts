/**
 * What kind of refusal an error is. Domain and core errors say only that (and their code and
 * facts); the HTTP edge maps each kind to a status in one table (problem-details.filter.ts), so
 * neither speaks HTTP.
 * - not-found: what the request is about does not exist (404)
 * - rule-violated: a business rule refused the command (422)
 * - conflict: the request contradicts the current state, or lost to concurrent writers (409)
 * - precondition-failed: the caller's expected version (If-Match) is not the current one (412)
 * - unavailable: not possible right now, worth retrying shortly (503)
 *
 * Errors without a kind (UnitOfWorkConflict, which the unit of work turns into
 * ConcurrencyConflictError before anyone sees it; an unknown event type; an unreadable schema) are
 * defects or internal signals: a 500, logged.
 */
export type ErrorKind = 'not-found' | 'rule-violated' | 'conflict' | 'precondition-failed' | 'unavailable';

/** An error a caller may be shown: its kind, a stable code, a message and the facts that help. */
export interface KindedError extends Error {
  readonly kind: ErrorKind;
  readonly code: string;
  /** Returned to the caller as members of the problem (e.g. the balance and the requested amount). */
  readonly details: Readonly<Record<string, unknown>>;
}

export function isKindedError(error: unknown): error is KindedError {
  const candidate = error as Partial<KindedError> | null;
  return (
    error instanceof Error &&
    typeof candidate?.kind === 'string' &&
    typeof candidate.code === 'string' &&
    typeof candidate.details === 'object'
  );
}
