import { describe, expect, it } from '@jest/globals';
import {
  BACKLOG_RETRY_AFTER_MAX_SECONDS,
  BACKLOG_RETRY_AFTER_MIN_SECONDS,
  backlogRetryAfterSeconds,
  settleRatePerSecond,
} from './transfer-backlog.js';

// The Retry-After of 503 TRANSFER_BACKLOG_FULL: the backlog's excess over the recent settle rate,
// bounded. (The gate itself is tested end to end in test/transfer-backpressure.e2e-spec.ts.)

describe('backlogRetryAfterSeconds', () => {
  it('is the excess divided by the rate, rounded up', () => {
    expect(backlogRetryAfterSeconds(100, 40)).toBe(3);
    expect(backlogRetryAfterSeconds(400, 40)).toBe(10);
  });

  it('stays within its bounds: never "now", never longer than the maximum', () => {
    expect(backlogRetryAfterSeconds(1, 10_000)).toBe(BACKLOG_RETRY_AFTER_MIN_SECONDS);
    expect(backlogRetryAfterSeconds(1_000_000, 1)).toBe(BACKLOG_RETRY_AFTER_MAX_SECONDS);
  });

  it('is the longest when nothing settled (a stopped process) or the rate is unknown', () => {
    expect(backlogRetryAfterSeconds(5, 0)).toBe(BACKLOG_RETRY_AFTER_MAX_SECONDS);
    expect(backlogRetryAfterSeconds(5, Number.NaN)).toBe(BACKLOG_RETRY_AFTER_MAX_SECONDS);
  });
});

describe('settleRatePerSecond', () => {
  it('is the settled count gained per second between the oldest and the newest sample', () => {
    const samples = [
      { at: 1_000, pending: 50, settled: 100 },
      { at: 2_000, pending: 60, settled: 130 },
      { at: 3_000, pending: 70, settled: 180 },
    ];
    expect(settleRatePerSecond(samples)).toBe(40);
  });

  it('is unknown (0) without samples, with one, or with samples too close together', () => {
    expect(settleRatePerSecond([])).toBe(0);
    expect(settleRatePerSecond([{ at: 1_000, pending: 1, settled: 1 }])).toBe(0);
    expect(
      settleRatePerSecond([
        { at: 1_000, pending: 1, settled: 1 },
        { at: 1_200, pending: 1, settled: 50 },
      ]),
    ).toBe(0);
  });

  it('is never negative (a rebuilt table may count fewer rows for a while)', () => {
    expect(
      settleRatePerSecond([
        { at: 1_000, pending: 10, settled: 500 },
        { at: 5_000, pending: 10, settled: 20 },
      ]),
    ).toBe(0);
  });
});
