import { type DynamicModule, Module, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { EventStore, ProjectionAdmin } from '../../event-sourcing/index.js';
import { LiveFeed } from '../../event-log/live-feed.js';
import { MetricsInstrumentation } from './instrumentation.js';
import { LedgerMetrics } from './ledger-metrics.js';
import { MetricsController } from './metrics.controller.js';
import { MetricsListener } from './metrics-listener.js';
import { installScrapeTimeGauges } from './scrape-time-gauges.js';

/**
 * GET /metrics and the counters behind it; app.factory.ts mounts the HTTP timing middleware
 * (httpMetrics). On PORT, or only on METRICS_PORT when that is set (MetricsListener).
 */
@Module({})
export class MetricsModule implements OnModuleInit {
  static forRoot(config: { readonly metricsPort?: number }): DynamicModule {
    return {
      module: MetricsModule,
      controllers: config.metricsPort === undefined ? [MetricsController] : [],
      providers: [LedgerMetrics, MetricsInstrumentation, MetricsListener],
      exports: [LedgerMetrics],
    };
  }

  constructor(
    private readonly metrics: LedgerMetrics,
    private readonly projections: ProjectionAdmin,
    private readonly store: EventStore,
    private readonly moduleRef: ModuleRef,
  ) {}

  onModuleInit(): void {
    // The live feed is the event-log feature's own provider: found, not exported for this alone.
    let liveFeed: LiveFeed | undefined;
    installScrapeTimeGauges(this.metrics, {
      projections: () => this.projections.status(),
      liveFeedConnections: () => (liveFeed ??= this.moduleRef.get(LiveFeed, { strict: false }))?.slots.open,
      commandLanes: () => this.store.laneDepth,
    });
  }
}
