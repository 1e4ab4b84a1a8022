import type { ProjectionStatusReport } from '../../event-sourcing/index.js';
import type { LedgerMetrics } from './ledger-metrics.js';

/** The statuses ledger_projection_status has a series for (ProjectionRunStatus). */
const PROJECTION_STATUSES = ['running', 'failed'] as const;
/** A scrape never waits longer than this for the projection status (one query): the gauges keep their last values. */
const STATUS_TIMEOUT_MS = 1000;

export interface ScrapeSources {
  /** What the admin API answers (ProjectionAdmin.status): one query, whatever the number of projections. */
  readonly projections: () => Promise<readonly ProjectionStatusReport[]>;
  /** Open live streams in this process, or undefined while the live feed is not built. */
  readonly liveFeedConnections: () => number | undefined;
  /** The command lanes' queue in this process (EventStore.laneDepth). */
  readonly commandLanes: () => { readonly waiting: number; readonly streams: number };
}

/**
 * Fills the projection, live-feed and command-lane gauges when Prometheus scrapes, not on every event: the three
 * projection gauges are collected concurrently by the registry, so they share one status read per
 * scrape (the pending promise), and a slow database bounds the scrape at STATUS_TIMEOUT_MS.
 */
export function installScrapeTimeGauges(metrics: LedgerMetrics, sources: ScrapeSources): void {
  let pending: Promise<void> | undefined;
  const refresh = async (): Promise<void> => {
    const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), STATUS_TIMEOUT_MS).unref());
    const reports = await Promise.race([sources.projections().catch(() => undefined), timeout]);
    if (!reports) return;
    metrics.projectionLagEvents.reset();
    metrics.projectionLagSeconds.reset();
    metrics.projectionStatus.reset();
    for (const report of reports) {
      metrics.projectionLagEvents.set({ projection: report.name }, report.lagEvents);
      metrics.projectionLagSeconds.set({ projection: report.name }, report.lagMs / 1000);
      for (const status of PROJECTION_STATUSES) {
        metrics.projectionStatus.set({ projection: report.name, status }, report.status === status ? 1 : 0);
      }
    }
  };
  const shared = (): Promise<void> => (pending ??= refresh().finally(() => (pending = undefined)));
  for (const gauge of [metrics.projectionLagEvents, metrics.projectionLagSeconds, metrics.projectionStatus]) {
    (gauge as { collect?: () => Promise<void> }).collect = shared;
  }
  (metrics.liveFeedConnections as { collect?: () => void }).collect = () => {
    metrics.liveFeedConnections.set(sources.liveFeedConnections() ?? 0);
  };
  (metrics.lanesWaiting as { collect?: () => void }).collect = () => metrics.lanesWaiting.set(sources.commandLanes().waiting);
  (metrics.lanesBusy as { collect?: () => void }).collect = () => metrics.lanesBusy.set(sources.commandLanes().streams);
}
