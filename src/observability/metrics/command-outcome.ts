import { isKindedError } from '../../event-sourcing/index.js';
import type { CommandOutcome } from './ledger-metrics.js';

/**
 * What a command's failure counts as: a stale If-Match (WrongExpectedVersionError) is `precondition_failed`, a lost race (ConcurrencyConflictError) or a
 * contradicting state `conflict`, a business refusal or an unknown target `rejected`, a refusal for
 * load worth retrying shortly (STREAM_BUSY: the account's queue on this instance; the kind
 * `unavailable`) `busy`; anything without a kind (a defect, an unreachable database) is an `error`,
 * which alerts: a hot account must not look like a broken service.
 */
export function commandOutcomeOf(error: unknown): CommandOutcome {
  if (!isKindedError(error)) return 'error';
  switch (error.kind) {
    case 'precondition-failed':
      return 'precondition_failed';
    case 'conflict':
      return 'conflict';
    case 'rule-violated':
    case 'not-found':
      return 'rejected';
    case 'unavailable':
      return 'busy';
    default:
      return 'error';
  }
}
