import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The pause before attempt `attempt + 1` after a lost race: full jitter, doubling from 4 ms up to
 * 250 ms, so that contenders on one stream spread out instead of colliding again. The nine pauses
 * of ten attempts add up to about half a second in expectation and one second at most: enough for
 * a short burst of another process on the stream to pass, short enough for an HTTP request.
 */
export function conflictBackoff(attempt: number): Promise<void> {
  return sleep(Math.random() * Math.min(2 * 2 ** attempt, 250));
}
