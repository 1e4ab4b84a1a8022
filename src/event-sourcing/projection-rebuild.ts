import { laterOf } from './checkpoint-order.js';
import { applyWithRetries } from './projection-apply-batch.js';
import type { ProjectionState } from './projection-checkpoints.js';
import { rebuildAttemptFailed } from './projection-rebuild-failures.js';
import { LostLease, type RunnerContext } from './projection-runner-context.js';
import { ShadowTables } from './projection-shadow.js';
import { ProjectionApplyError, applyToProjection } from './projection.js';
import type { Checkpoint } from './recorded-event.js';

/**
 * A rebuild step whose unexpected errors (not a projection's own failure, e.g. SQL of the swap)
 * count as rebuild attempts, so they end in an abandoned rebuild rather than a loop that also keeps
 * the live step from running.
 */
export async function guardedRebuildStep(context: RunnerContext, state: ProjectionState): Promise<boolean> {
  try {
    return await rebuildStep(context, state);
  } catch (error) {
    if (error instanceof LostLease) throw error;
    context.state = undefined;
    const message = error instanceof Error ? error.message : String(error);
    await rebuildAttemptFailed(context, message, true);
    return true;
  }
}

/** One step of a rebuild: prepare the shadow tables, apply a batch to them, or swap them in. */
async function rebuildStep(context: RunnerContext, state: ProjectionState): Promise<boolean> {
  const { deps } = context;
  const projection = context.readModel(); // a process manager's rebuild is refused before it is requested
  const { dataSource, checkpoints, options, owner, logger } = deps;
  const rebuild = state.rebuild!;
  context.shadow ??= await ShadowTables.forProjection(dataSource.manager, projection);
  if (rebuild.status === 'requested') {
    const { token } = context.holding();
    await dataSource.transaction(async (manager) => {
      if (!(await checkpoints.lockIfLeader(manager, context.row, owner, token))) throw new LostLease();
      await context.shadow!.create(manager);
      await checkpoints.rebuildStarted(manager, context.row);
    });
    context.rebuildAttempts = 0;
    context.state = undefined;
    logger.log(`Projection ${projection.name}: rebuild started`);
    return true;
  }
  const { events } = await deps.log.readAll(rebuild.checkpoint, options.batchSize);
  if (events.length > 0) {
    const applied = await applyWithRetries(context, events, 'rebuild', rebuild.checkpoint);
    if (!applied || events.length === options.batchSize) return true;
  }
  await swap(context);
  context.state = undefined;
  return true;
}

/**
 * The rebuilt copy has caught up with the head of the log: in one transaction, bring it exactly to
 * the point the live tables are at, replace the live content with it, and move the live checkpoint.
 * - async: an EXCLUSIVE lock on the live tables waits for the segments' batches in flight and holds
 *   the next ones back, then every segment's row is locked; the copy is brought to the latest
 *   checkpoint, which becomes every segment's: nothing is skipped or applied twice;
 * - inline: an EXCLUSIVE lock on the live tables holds appends back (readers go on), and every
 *   committed event not yet in the copy is applied to it.
 */
async function swap(context: RunnerContext): Promise<void> {
  const { deps } = context;
  const projection = context.readModel();
  const { dataSource, checkpoints, owner, logger } = deps;
  let applied = 0;
  try {
    const { token } = context.holding();
    await dataSource.transaction(async (manager) => {
      // Copies whole tables (DELETE + INSERT … SELECT): may outlast DATABASE_STATEMENT_TIMEOUT_MS on a
      // large projection, so this one transaction runs without it (the fence keeps it the leader's).
      await manager.query('SET LOCAL statement_timeout = 0');
      const state = await checkpoints.lockIfLeader(manager, context.row, owner, token);
      if (!state?.rebuild) throw new LostLease();
      let until: Checkpoint | undefined;
      // Inline: holds appends back. Async: first, before any other segment's row — a live batch
      // writes the live tables before its fenced UPDATE of its row (advanceAndCommit), so a swap
      // holding that row while it waited for the batch's rows was a deadlock (aborting the swap, a
      // failed rebuild attempt). Waiting here, the swap holds nothing the batch needs; later batches
      // wait for the swap before their first write. (A projection writing its tables in another order
      // than it lists them can still meet the swap between two tables: a detected deadlock, retried.)
      await manager.query(`LOCK TABLE ${context.shadow!.liveTables()} IN EXCLUSIVE MODE`);
      if (projection.mode !== 'inline') {
        // Every segment's row locked too (pausing its runner): the live tables hold each segment's
        // keys up to its own checkpoint, the copy is brought to the latest of them all.
        const others = await checkpoints.lockOtherSegments(manager, context.row);
        until = [state.checkpoint, ...others].reduce(laterOf, state.rebuild.checkpoint);
      }
      const remaining = await deps.log.readCommitted(state.rebuild.checkpoint, until, manager);
      await context.shadow!.use(manager);
      await applyToProjection(projection, remaining, manager, false); // a replay of the log: no spans
      await context.shadow!.replaceLive(manager); // qualified names: the search_path does not matter
      applied = state.rebuild.eventsApplied + remaining.length;
      await checkpoints.rebuildFinished(manager, context.row, until ?? null);
      if (until) await checkpoints.alignOtherSegments(manager, context.row, until);
    });
  } catch (error) {
    if (error instanceof LostLease) {
      context.lease.lost();
      return;
    }
    if (error instanceof ProjectionApplyError) {
      await rebuildAttemptFailed(context, error.message, false);
      return;
    }
    throw error;
  }
  const live = await context.load();
  deps.onAdvance(projection.name, live.checkpoint);
  logger.log(`Projection ${projection.name}: rebuilt from ${applied} events and swapped in`);
}
