import type { ThrottlerStorage } from '@nestjs/throttler';

/** What @nestjs/throttler's guard expects back from a storage (its ThrottlerStorageRecord). */
export interface ThrottlerHit {
  totalHits: number;
  timeToExpire: number;
  isBlocked: boolean;
  timeToBlockExpire: number;
}

/** How often idle records are dropped (checked on a request: no timer to keep or stop). */
const SWEEP_EVERY_MS = 60_000;

/**
 * The expiry times of one key's recorded hits, oldest first, as a queue: expired hits leave from the
 * front, new ones join at the back, each in O(1) (amortised). A key's ttl is fixed (the guard's key
 * names its route and throttler), so `now + ttl` never decreases unless the wall clock steps back;
 * then a few hits may stay counted until the older ones before them expire, which only errs strict.
 */
class HitQueue {
  private times: number[] = [];
  private head = 0;

  get size(): number {
    return this.times.length - this.head;
  }

  /** The earliest expiry, or undefined when empty. */
  get first(): number | undefined {
    return this.head < this.times.length ? this.times[this.head] : undefined;
  }

  push(expiresAt: number): void {
    this.times.push(expiresAt);
  }

  dropExpired(now: number): void {
    const times = this.times;
    let head = this.head;
    while (head < times.length && times[head] <= now) head++;
    if (head === times.length) {
      this.times = [];
      this.head = 0;
    } else if (head > 1024 && head * 2 > times.length) {
      this.times = times.slice(head); // reclaim the front once it is most of the array
      this.head = 0;
    } else {
      this.head = head;
    }
  }

  clear(): void {
    this.times = [];
    this.head = 0;
  }
}

interface KeyRecord {
  readonly hits: HitQueue;
  /** The fixed window reported as timeToExpire (ms since the epoch). */
  expiresAt: number;
  isBlocked: boolean;
  blockExpiresAt: number;
}

/**
 * The in-memory rate limit storage, with the same answers as @nestjs/throttler 6.x's default
 * ThrottlerStorageService (a sliding log of hits per key; over the limit, blocked for blockDuration),
 * checked against it by test/sliding-window-throttler.storage.spec.ts. The default copies and scans
 * every hit of the window on every request (`filter`, then `Math.min(...hits)`): at the benchmark's
 * 1,000 deposits/s from one client that was a new 60,000-element array per request, 6–7 % of the
 * service's CPU and most of its garbage (bench/analysis.md). Here a request costs O(1) amortised.
 */
export class SlidingWindowThrottlerStorage implements ThrottlerStorage {
  private readonly records = new Map<string, KeyRecord>();
  private lastSweep = Date.now();

  /** Keys held (for tests: idle ones are dropped). */
  get size(): number {
    return this.records.size;
  }

  increment(key: string, ttl: number, limit: number, blockDuration: number, _throttlerName: string): Promise<ThrottlerHit> {
    const now = Date.now();
    if (now - this.lastSweep >= SWEEP_EVERY_MS) this.sweep(now);
    let record = this.records.get(key);
    if (!record) {
      record = { hits: new HitQueue(), expiresAt: now + ttl, isBlocked: false, blockExpiresAt: 0 };
      this.records.set(key, record);
    }
    const { hits } = record;
    hits.dropExpired(now);
    let timeToExpire = Math.ceil((record.expiresAt - now) / 1000);
    if (timeToExpire <= 0) {
      record.expiresAt = now + ttl;
      timeToExpire = Math.ceil(ttl / 1000);
    }
    if (blockDuration <= 0) {
      const isBlocked = hits.size >= limit;
      if (!isBlocked) hits.push(now + ttl);
      const first = hits.first;
      return Promise.resolve({
        totalHits: hits.size + (isBlocked ? 1 : 0),
        timeToExpire,
        isBlocked,
        timeToBlockExpire: isBlocked ? (first === undefined ? timeToExpire : Math.ceil((first - now) / 1000)) : 0,
      });
    }
    if (!record.isBlocked) hits.push(now + ttl);
    if (hits.size > limit && !record.isBlocked) {
      record.isBlocked = true;
      record.blockExpiresAt = now + blockDuration;
    }
    const timeToBlockExpire = Math.ceil((record.blockExpiresAt - now) / 1000);
    if (timeToBlockExpire <= 0 && record.isBlocked) {
      // The block is over: the window starts again from this request.
      record.isBlocked = false;
      hits.clear();
      hits.push(now + ttl);
    }
    return Promise.resolve({ totalHits: hits.size, timeToExpire, isBlocked: record.isBlocked, timeToBlockExpire });
  }

  /** Drops the keys with nothing left to remember: no live hit, no block, their window over. */
  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [key, record] of this.records) {
      if (record.isBlocked && record.blockExpiresAt > now) continue;
      if (record.expiresAt > now) continue;
      record.hits.dropExpired(now);
      if (record.hits.size > 0) continue;
      this.records.delete(key);
    }
  }
}
