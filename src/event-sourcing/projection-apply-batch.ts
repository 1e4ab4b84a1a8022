import { setTimeout as sleep } from 'node:timers/promises';
import { eventLogContext, withLogContext } from '../observability/log-context.js';
import { isSameCheckpoint } from './checkpoint-order.js';
import { commitReaction } from './projection-reactions.js';
import { rebuildAttemptFailed } from './projection-rebuild-failures.js';
import { LostLease, type RunnerContext, type Target } from './projection-runner-context.js';
import { ProjectionApplyError, applyToProjection } from './projection.js';
import { isProcessManager } from './subscriber.js';
import type { Checkpoint, RecordedEvent } from './recorded-event.js';

/**
 * Applies a batch in one transaction. When it fails at event k, the events before k are committed
 * (a projection applying whole batches at once is retried event by event to find k), then a failed
 * attempt is counted at k with backoff; for a rebuild, too many failures give the rebuild up.
 * True when every event was applied.
 */
export async function applyWithRetries(
  context: RunnerContext,
  events: readonly RecordedEvent[],
  target: Target,
  from: Checkpoint,
): Promise<boolean> {
  let failure: ProjectionApplyError;
  try {
    await commit(context, events, target, from);
    if (target === 'rebuild') context.rebuildAttempts = 0;
    return true;
  } catch (error) {
    if (error instanceof LostLease) {
      context.lease.lost();
      context.state = undefined;
      return false;
    }
    if (!(error instanceof ProjectionApplyError)) throw error;
    failure = error;
  }
  if (failure.index === undefined) {
    // Which event failed is unknown: go one event at a time; the failing one lands below.
    let checkpoint = from;
    for (const event of events) {
      try {
        await commit(context, [event], target, checkpoint);
      } catch (error) {
        if (!(error instanceof ProjectionApplyError)) throw error;
        await countFailure(context, event, error, target);
        return false;
      }
      checkpoint = { transactionId: event.transactionId, position: event.position };
    }
    return true; // every event passed on its own (the batch failure did not repeat)
  }
  if (failure.index > 0 && !isProcessManager(context.projection)) {
    // Commit what precedes the failing event (a reaction has done so itself); it is tried again
    // from there on the next loop.
    if (!(await applyWithRetries(context, events.slice(0, failure.index), target, from))) return false;
  }
  await countFailure(context, events[failure.index], failure, target);
  return false;
}

async function countFailure(context: RunnerContext, failed: RecordedEvent, failure: ProjectionApplyError, target: Target): Promise<void> {
  const { checkpoints, options, logger } = context.deps;
  const name = context.row;
  const message = `${failed.type} at position ${failed.position}: ${failure.message}`;
  context.state = undefined;
  if (target === 'rebuild') {
    await rebuildAttemptFailed(context, message, true);
    return;
  }
  const state = await checkpoints.recordFailure(name, context.holding(), failed.position, failure.message, options.maxAttempts);
  if (!state) throw new LostLease(); // not ours to count against any more
  withLogContext(eventLogContext(name, failed), () => {
    if (state.status === 'failed') logger.error(`Projection ${name} stopped after ${state.attempts} attempts: ${message}`);
    else logger.warn(`Projection ${name}, attempt ${state.attempts}: ${message}`);
  });
  if (state.status !== 'failed') await sleep(context.backoff(state.attempts));
}

async function commit(context: RunnerContext, events: readonly RecordedEvent[], target: Target, from: Checkpoint): Promise<void> {
  if (isProcessManager(context.projection)) return commitReaction(context, context.projection, events, from);
  const { deps } = context;
  const projection = context.readModel();
  const { dataSource, checkpoints, options, owner } = deps;
  const last = events[events.length - 1];
  const checkpoint = { transactionId: last.transactionId, position: last.position };
  const { token } = context.holding();
  if (target === 'live') {
    // Fenced at the end, with the COMMIT (advanceAllAndCommit): applied by a holder that is not one
    // any more, the batch is rolled back; no lock of the row is held across a round trip of this
    // process. Other read models' batches of the same turn share the transaction (ReadModelBatchCommits).
    const advanced = await checkpoints.commitLiveBatch({
      apply: (manager) => applyToProjection(projection, events, manager, true),
      move: { name: context.row, owner, token, from, to: checkpoint, ttlMs: options.leaseTtlMs },
      alone: projection.commitsAlone === true,
    });
    if (!advanced) throw new LostLease();
    context.state = advanced; // what this transaction left in the row: the next batch needs no reload
    deps.onAdvance(projection.name, checkpoint);
    return;
  }
  await dataSource.transaction(async (manager) => {
    const state = await checkpoints.lockIfLeader(manager, context.row, owner, token);
    const current = state?.rebuild?.checkpoint;
    // Fencing: only the lease holder, continuing exactly where the stored rebuild checkpoint is.
    if (!current || !isSameCheckpoint(current, from)) throw new LostLease();
    await context.shadow!.use(manager);
    await applyToProjection(projection, events, manager, false); // a rebuild replays: no spans
    await checkpoints.rebuildAdvanced(manager, context.row, checkpoint, events.length);
    context.state = {
      ...state!,
      rebuild: { ...state!.rebuild!, checkpoint, eventsApplied: state!.rebuild!.eventsApplied + events.length },
    };
  });
}
