import type { ErrorKind, KindedError } from '../event-sourcing/domain.js';

/**
 * The kinds a business refusal can be (see ErrorKind; the HTTP edge maps kinds to statuses):
 * - not-found: the thing the command is about does not exist (404)
 * - rule-violated: a business rule refused the command (422)
 * - conflict: the command contradicts what already exists (409)
 */
export type DomainErrorKind = Extract<ErrorKind, 'not-found' | 'rule-violated' | 'conflict'>;

/** A refusal with a stable machine-readable code (e.g. ACCOUNT_INSUFFICIENT_FUNDS). */
export abstract class DomainError extends Error implements KindedError {
  abstract readonly code: string;
  abstract readonly kind: DomainErrorKind;

  constructor(
    message: string,
    /** Facts that help the caller (e.g. the balance and the requested amount); returned to clients. */
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}
