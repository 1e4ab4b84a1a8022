import { describe, expect, it } from '@jest/globals';
import { RecentSet } from './recent-set.js';

describe('RecentSet', () => {
  it('keeps the most recently added values up to its capacity, forgetting the oldest first', () => {
    const set = new RecentSet<string>(2);
    set.add('a');
    set.add('b');
    set.add('a'); // 'a' is the most recent again
    set.add('c');
    expect([set.has('a'), set.has('b'), set.has('c'), set.size]).toEqual([true, false, true, 2]);
  });
});
