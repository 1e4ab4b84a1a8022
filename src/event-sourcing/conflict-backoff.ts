import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The pause before attempt `attempt + 1` after a lost race: full jitter, doubling from 4 ms up to
 * 250 ms, so that contenders on one stream spread out instead of colliding again. Ten attempts
 * span about a second in expectation, long enough for another process's burst on the stream to
 * pass, short enough for an HTTP request.
 */
export function conflictBackoff(attempt: number): Promise<void> {
  return sleep(Math.random() * Math.min(2 * 2 ** attempt, 250));
}
