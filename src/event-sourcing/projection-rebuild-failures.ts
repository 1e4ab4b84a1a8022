import { setTimeout as sleep } from 'node:timers/promises';
import type { RunnerContext } from './projection-runner-context.js';

/**
 * Counts a failed rebuild attempt (a projection's failure in the copy, or an unexpected error of a
 * rebuild step): with backoff, until maxAttempts gives the rebuild up.
 */
export async function rebuildAttemptFailed(context: RunnerContext, message: string, warn: boolean): Promise<void> {
  context.rebuildAttempts++;
  if (warn) {
    context.deps.logger.warn(`Projection ${context.projection.name} rebuild, attempt ${context.rebuildAttempts}: ${message}`);
  }
  if (context.rebuildAttempts >= context.deps.options.maxAttempts) await abandonRebuild(context, message);
  else await sleep(context.backoff(context.rebuildAttempts));
}

export async function abandonRebuild(context: RunnerContext, reason: string): Promise<void> {
  const { projection, deps } = context;
  deps.logger.error(`Projection ${projection.name}: rebuild abandoned: ${reason}`);
  try {
    await deps.dataSource.transaction((manager) => context.shadow!.drop(manager));
  } catch (error) {
    // Recorded all the same: an abandoned rebuild must show its reason even when its copies cannot go.
    reason = `${reason}; its copies could not be dropped: ${(error as Error).message}`;
  }
  await deps.dataSource.transaction((manager) =>
    deps.checkpoints.rebuildFinished(manager, context.row, null, `rebuild abandoned: ${reason}`),
  );
  context.rebuildAttempts = 0;
}
