import type { RecordedEvent } from './recorded-event.js';

/**
 * At most this many positions are remembered past a checkpoint; beyond it the farthest ones are
 * forgotten (reacted to again: the at-least-once of a crash). Lanes only complete events of the batch
 * in hand, so the list stays about a batch long.
 */
export const COMPLETED_AHEAD_LIMIT = 10_000;

/**
 * What a process manager's segment remembers after a batch (projection_checkpoints.completed_ahead,
 * migration 019): the positions completed past its new checkpoint. The checkpoint can only take the
 * prefix of the batch whose events all completed; events of other lanes past it completed too, and
 * whoever holds the segment next — the same holder's retry, a restart, another instance — skips them
 * instead of reacting again. That is what keeps a reaction that cannot be taken back (a publish to a
 * broker, whose duplicate window is finite) from happening twice.
 *
 * `before`: what was remembered when the batch started; `completed[i]`: whether events[i] was reacted
 * to (skipped ones count; an event without a handler does not: there is nothing to remember, see
 * commitReaction); `done`: the prefix the checkpoint takes.
 */
export function completedAhead(
  before: readonly number[],
  events: readonly RecordedEvent[],
  completed: readonly boolean[],
  done: number,
): number[] {
  const passed = new Set(events.slice(0, done).map((event) => event.position));
  const ahead = new Set(before.filter((position) => !passed.has(position)));
  for (const [index, event] of events.entries()) if (index >= done && completed[index]) ahead.add(event.position);
  return [...ahead].sort((a, b) => a - b).slice(0, COMPLETED_AHEAD_LIMIT);
}

/** Whether two lists of positions, both sorted as completedAhead returns them, are the same. */
export function samePositions(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((value, index) => value === b[index]);
}
