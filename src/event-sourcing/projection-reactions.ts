import { isSameCheckpoint } from './checkpoint-order.js';
import { completedAhead, samePositions } from './completed-ahead.js';
import { isLeaseLost, runFenced } from './lease-fence.js';
import { LostLease, type RunnerContext } from './projection-runner-context.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ProcessManager, ReactionAbandoned, reactTo } from './process-manager.js';
import { ProjectionApplyError } from './projection.js';
import { runInLanes } from './reaction-lanes.js';
import type { Checkpoint, RecordedEvent } from './recorded-event.js';
import { keyOf } from './subscriber.js';

/**
 * A process manager (process-manager.ts) reacts with commands of its own, each in its own
 * transaction. Those run outside the checkpoint transaction: that one locks the checkpoint row,
 * which gives it a transaction id, and commit-safe readers wait for every older transaction id — a
 * long step inside it would hold every projection back. The checkpoint then advances in one fenced
 * statement of its own (advanceReaction).
 *
 * Every step is fenced: the reaction runs with this holding ambient (runFenced), and each of its
 * transactions commits only if the database still sees this holding (ledger_fence, just before
 * COMMIT). A holder that lost the lease, even one paused past it that does not know yet, commits
 * nothing; the next holder resumes from the checkpoint. Events of one key (keyOf: a transfer) are
 * reacted to one at a time, in order; different keys concurrently, up to `reactionConcurrency`
 * (reaction-lanes.ts), so one transfer's commit round trips do not hold the others back. No event
 * starts after a third of the lease, so the checkpoint moves often and a takeover has little to
 * redo. Events of other lanes completed past the prefix the checkpoint can take are written with it
 * (completed-ahead.ts) and skipped by every later holder. At-least-once only between a step and the
 * checkpoint's write (a crash there), which is why a process manager's steps must be idempotent.
 * A failure at event k advances the checkpoint past the events before it, then throws for k.
 */
export async function commitReaction(
  context: RunnerContext,
  processManager: ProcessManager,
  events: readonly RecordedEvent[],
  from: Checkpoint,
): Promise<void> {
  const { deps } = context;
  const { checkpoints, options, owner } = deps;
  const holding = context.holding();
  // A cheap look first (no lock): the fenced steps and the fenced advance below are what decide.
  const before = await checkpoints.load(context.row);
  if (
    before?.leaseOwner !== owner ||
    before.leaseToken !== holding.token ||
    before.status !== 'running' ||
    !isSameCheckpoint(before.checkpoint, from)
  ) {
    throw new LostLease();
  }
  const deadline = performance.now() + options.leaseTtlMs / 3;
  // Completed past the checkpoint by an earlier batch of this segment (any holder): not again.
  const skip = new Set(before.completedAhead);
  const { done, completed, failure } = await runInLanes(
    events,
    (event) => keyOf(processManager, event),
    processManager.reactionConcurrency ?? options.reactionConcurrency ?? 1,
    () => performance.now() < deadline && context.lease.current === holding && !context.stopped,
    (event) =>
      skip.has(event.position)
        ? Promise.resolve()
        : runFenced(holding, async () => {
            try {
              await reactTo(processManager, event);
            } catch (error) {
              throw new ProjectionApplyError(0, error);
            }
          }),
  );
  if (failure && isLeaseLost(failure.error)) throw new LostLease();
  if (failure && !(failure.error instanceof ProjectionApplyError)) throw failure.error;
  // Only events with a handler are remembered: skipping the others again changes nothing, and an
  // entry nothing reacts to could be left behind for good (a batch with no handled event moves the
  // checkpoint past it without coming here), filling COMPLETED_AHEAD_LIMIT with stale positions that
  // crowd out the ones that matter — and a release that adds a handler would skip such an event.
  const reacted = completed.map((isDone, index) => isDone && processManager.handlers.handlerFor(events[index]) !== undefined);
  const ahead = completedAhead(before.completedAhead, events, reacted, done);
  if (done > 0 || !samePositions(ahead, before.completedAhead)) {
    const last = done > 0 ? events[done - 1] : undefined;
    const checkpoint = last ? { transactionId: last.transactionId, position: last.position } : from;
    const state = await checkpoints.advanceReaction(context.row, holding, from, last ? checkpoint : undefined, options.leaseTtlMs, ahead);
    if (!state) throw new LostLease();
    context.state = state;
    if (last) deps.onAdvance(processManager.name, checkpoint);
  }
  // A step given up because the process stops is no failure: count nothing, and look again after a
  // pause (the runner stops meanwhile) rather than at once.
  if (failure && failure.error instanceof ProjectionApplyError && failure.error.error instanceof ReactionAbandoned) {
    await sleep(options.retryBaseMs);
    return;
  }
  // A failure past an event that did not complete (another lane stopped before it) is met again from
  // the checkpoint, where everything before it completes first: an attempt is counted for the event
  // the checkpoint stops at, never for one behind an unfinished event.
  if (failure?.index === done) throw new ProjectionApplyError(done, (failure.error as ProjectionApplyError).error);
}
