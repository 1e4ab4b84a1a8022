import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG } from '../../config/app-config.provider.js';
import type { AppConfig } from '../../config/app-config.js';
import { QUERY_DATA_SOURCE } from '../../event-sourcing/index.js';
import { ProblemException } from '../../shared/problem-details/problem.exception.js';

/** Retry-After bounds, in seconds: never "now", never so long that a drained backlog idles. */
export const BACKLOG_RETRY_AFTER_MIN_SECONDS = 1;
export const BACKLOG_RETRY_AFTER_MAX_SECONDS = 60;
/** The settle rate is measured over the samples of this last stretch of time. */
const RATE_WINDOW_MS = 10_000;

export interface Sample {
  readonly at: number;
  readonly pending: number;
  /** Transfers completed or failed so far (the table's rows that are not pending). */
  readonly settled: number;
}

/**
 * Seconds the settle rate needs to bring the backlog `excess` transfers down, within
 * [BACKLOG_RETRY_AFTER_MIN_SECONDS, BACKLOG_RETRY_AFTER_MAX_SECONDS]; the longest when nothing
 * settled recently (a stopped process gives no sign of when it will resume).
 */
export function backlogRetryAfterSeconds(excess: number, ratePerSecond: number): number {
  const seconds = ratePerSecond > 0 ? Math.ceil(excess / ratePerSecond) : BACKLOG_RETRY_AFTER_MAX_SECONDS;
  return Math.min(BACKLOG_RETRY_AFTER_MAX_SECONDS, Math.max(BACKLOG_RETRY_AFTER_MIN_SECONDS, seconds));
}

/**
 * Transfers settled per second between the oldest and the newest sample (0: unknown, when they are
 * less than half a second apart). A rebuild of the table may make the count go down for a while:
 * never a negative rate.
 */
export function settleRatePerSecond(samples: readonly Sample[]): number {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (!first || last.at - first.at < 500) return 0;
  return Math.max(0, ((last.settled - first.settled) * 1000) / (last.at - first.at));
}

/**
 * Backpressure of POST /transfers: when the transfer process is more than TRANSFER_MAX_BACKLOG
 * transfers behind, a new request is refused (503 TRANSFER_BACKLOG_FULL with Retry-After) before
 * anything is written, instead of being accepted into a queue that only grows.
 *
 * "Behind" is the number of `pending` rows of the `transfers` read table: requested, not yet
 * completed or failed. It is read with one COUNT over the table at most every
 * TRANSFER_BACKLOG_REFRESH_MS per instance (concurrent requests share the one query in flight), not
 * per request; the same scan counts the settled rows, whose growth between samples is the settle
 * rate that Retry-After is derived from. Approximate by design: the figure is up to the refresh
 * interval old, the `transfers` projection itself lags the log a little, and each instance decides
 * alone, so a burst may overshoot the bound by what arrives within one interval. The cost is one
 * sequential scan per interval and instance, which grows with the table (an index on the pending
 * rows would bound it by the backlog; see docs/configuration.md).
 */
@Injectable()
export class TransferBacklog {
  private samples: Sample[] = [];
  private refreshing: Promise<Sample> | undefined;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(QUERY_DATA_SOURCE) private readonly dataSource: DataSource,
  ) {}

  /** Throws 503 TRANSFER_BACKLOG_FULL when the backlog is over the bound; resolves otherwise. */
  async admit(): Promise<void> {
    const { maxBacklog } = this.config.transfers;
    if (maxBacklog === 0) return; // off
    const sample = await this.current();
    if (sample.pending < maxBacklog) return;
    const retryAfter = this.retryAfterSeconds(sample.pending - maxBacklog + 1);
    throw new ProblemException(
      503,
      'TRANSFER_BACKLOG_FULL',
      'Transfer backlog full',
      `The transfer process is ${sample.pending} transfers behind (at most ${maxBacklog} are accepted); nothing was written, retry after ${retryAfter} s`,
      { pending: sample.pending, maxBacklog },
      { 'Retry-After': String(retryAfter) },
    );
  }

  /** Seconds until the backlog is `excess` transfers lighter at the recent settle rate (see backlogRetryAfterSeconds). */
  private retryAfterSeconds(excess: number): number {
    return backlogRetryAfterSeconds(excess, settleRatePerSecond(this.samples));
  }

  private current(): Promise<Sample> {
    const last = this.samples[this.samples.length - 1];
    if (last && Date.now() - last.at < this.config.transfers.backlogRefreshMs) return Promise.resolve(last);
    this.refreshing ??= this.sample().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async sample(): Promise<Sample> {
    const [row] = (await this.dataSource.query(
      `SELECT count(*) FILTER (WHERE status = 'pending')::bigint AS pending, count(*) FILTER (WHERE status <> 'pending')::bigint AS settled
       FROM transfers`,
    )) as Array<{ pending: string; settled: string }>;
    const sample: Sample = { at: Date.now(), pending: Number(row.pending), settled: Number(row.settled) };
    // The window's samples, or else the newest older one: sparse requests still get a rate.
    const recent = this.samples.filter((kept) => sample.at - kept.at <= RATE_WINDOW_MS);
    this.samples = [...(recent.length ? recent : this.samples.slice(-1)), sample];
    return sample;
  }
}
