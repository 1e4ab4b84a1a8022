import { describe, expect, it } from '@jest/globals';
import { COMPLETED_AHEAD_LIMIT, completedAhead } from './completed-ahead.js';
import type { RecordedEvent } from './recorded-event.js';

const batch = (...positions: number[]) => positions.map((position) => ({ position }) as RecordedEvent);

describe('completedAhead', () => {
  it('remembers the events completed past the prefix the checkpoint takes', () => {
    // 10 and 11 done (the prefix), 12 failed, 13 and 15 completed in other lanes, 14 never started.
    expect(completedAhead([], batch(10, 11, 12, 13, 14, 15), [true, true, false, true, false, true], 2)).toEqual([13, 15]);
  });

  it('forgets what the checkpoint passed, keeps what lies beyond this batch', () => {
    // Before: 13 and 15 ahead, and 40 from a longer earlier batch. This batch (shorter) completes all of 12..15.
    expect(completedAhead([13, 15, 40], batch(12, 13, 14, 15), [true, true, true, true], 4)).toEqual([40]);
  });

  it('keeps a skipped event (counted completed) while the checkpoint stays before it', () => {
    expect(completedAhead([13], batch(12, 13, 14), [false, true, false], 0)).toEqual([13]);
  });

  it('is bounded', () => {
    const events = batch(...Array.from({ length: COMPLETED_AHEAD_LIMIT + 5 }, (_, index) => index + 2));
    const completed = events.map((_, index) => index > 0);
    const ahead = completedAhead([], [{ position: 1 } as RecordedEvent, ...events], [false, ...completed], 0);
    expect(ahead).toHaveLength(COMPLETED_AHEAD_LIMIT);
    expect(ahead[0]).toBe(3);
  });
});
