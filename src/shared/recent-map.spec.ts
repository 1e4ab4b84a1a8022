import { describe, expect, it } from '@jest/globals';
import { RecentMap } from './recent-map.js';

describe('RecentMap', () => {
  it('keeps the most recently set entries up to its capacity, forgetting the oldest first', () => {
    const map = new RecentMap<string, number>(2);
    map.set('a', 1);
    map.set('b', 2);
    map.set('a', 3); // 'a' is the most recent again, with its new value
    map.set('c', 4);
    expect([map.get('a'), map.get('b'), map.get('c'), map.size]).toEqual([3, undefined, 4, 2]);
  });

  it('a read makes an entry the most recent again', () => {
    const map = new RecentMap<string, number>(2);
    map.set('a', 1);
    map.set('b', 2);
    expect(map.get('a')).toBe(1);
    map.set('c', 3);
    expect([map.has('a'), map.has('b'), map.has('c')]).toEqual([true, false, true]);
  });

  it('remembers nothing with capacity 0', () => {
    const map = new RecentMap<string, number>(0);
    map.set('a', 1);
    expect([map.has('a'), map.size]).toEqual([false, 0]);
  });
});
