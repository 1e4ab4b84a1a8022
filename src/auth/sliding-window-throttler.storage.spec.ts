import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { ThrottlerStorageService } from '@nestjs/throttler';
import fc from 'fast-check';
import { SlidingWindowThrottlerStorage, type ThrottlerHit } from './sliding-window-throttler.storage.js';

/**
 * The rate limit must answer exactly as @nestjs/throttler's own storage did: the replacement only
 * changes what a request costs. Both storages get the same requests at the same (fake) times.
 */
describe('SlidingWindowThrottlerStorage', () => {
  let now = 0;
  beforeEach(() => {
    now = 1_800_000_000_000;
    jest.spyOn(Date, 'now').mockImplementation(() => now);
  });
  afterEach(() => {
    jest.restoreAllMocks();
  });

  /** What the guard reads: timeToBlockExpire only matters (and is only compared) while blocked. */
  const seen = (hit: ThrottlerHit) => ({
    totalHits: hit.totalHits,
    timeToExpire: hit.timeToExpire,
    isBlocked: hit.isBlocked,
    ...(hit.isBlocked ? { timeToBlockExpire: hit.timeToBlockExpire } : {}),
  });

  const step = fc.record({
    key: fc.constantFrom('a', 'b', 'c'),
    // Bursts within a millisecond or a few, steps onto the last millisecond of a window or a block, and past them.
    advanceMs: fc.oneof(
      fc.constant(0),
      fc.integer({ min: 1, max: 50 }),
      fc.integer({ min: 0, max: 3_000 }),
      fc.integer({ min: 0, max: 200_000 }),
      fc.constantFrom(999, 1_000, 2_500, 59_999, 60_000),
    ),
  });

  it('answers every request as the default storage does (limits, windows, blocks and their end)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 6 }),
        fc.constantFrom(1_000, 2_500, 60_000),
        fc.constantFrom(0, 1_000, 60_000),
        fc.array(step, { minLength: 1, maxLength: 200 }),
        async (limit, ttl, blockDuration, steps) => {
          const reference = new ThrottlerStorageService();
          const storage = new SlidingWindowThrottlerStorage();
          try {
            for (const [index, { key, advanceMs }] of steps.entries()) {
              now += advanceMs;
              const expected = seen(await reference.increment(key, ttl, limit, blockDuration, 'commands'));
              const actual = seen(await storage.increment(key, ttl, limit, blockDuration, 'commands'));
              expect({ index, ...actual }).toEqual({ index, ...expected });
            }
          } finally {
            reference.onApplicationShutdown(); // its sweep timer
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('blocks the request after the limit until the block ends, then counts from that request', async () => {
    const storage = new SlidingWindowThrottlerStorage();
    const hit = () => storage.increment('client', 60_000, 3, 60_000, 'commands');
    expect((await hit()).isBlocked).toBe(false);
    expect((await hit()).isBlocked).toBe(false);
    expect((await hit()).isBlocked).toBe(false);
    expect(await hit()).toMatchObject({ isBlocked: true, timeToBlockExpire: 60 });
    now += 59_000;
    expect(await hit()).toMatchObject({ isBlocked: true, timeToBlockExpire: 1 });
    now += 1_000;
    expect(await hit()).toMatchObject({ isBlocked: false, totalHits: 1 });
  });

  it('keeps a sliding count over a long busy window (many hits in one millisecond) and forgets idle keys', async () => {
    const storage = new SlidingWindowThrottlerStorage();
    for (let index = 0; index < 50_000; index++) {
      if (index % 1_000 === 0) now += 1;
      const answer = await storage.increment('busy', 60_000, 10_000_000, 60_000, 'commands');
      if (answer.totalHits !== index + 1) throw new Error(`hit ${index + 1} counted as ${answer.totalHits}`);
    }
    now += 60_000 - 49; // 60 s after the first millisecond of the 50: only its 1,000 hits have expired
    expect((await storage.increment('busy', 60_000, 10_000_000, 60_000, 'commands')).totalHits).toBe(50_000 - 1_000 + 1);
    now += 120_000;
    await storage.increment('other', 60_000, 10, 60_000, 'commands'); // a request after a quiet minute sweeps
    expect(storage.size).toBe(1);
  });
});
