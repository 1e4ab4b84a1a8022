import { type Server, createServer } from 'node:http';
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { APP_CONFIG } from '../../config/app-config.provider.js';
import type { AppConfig } from '../../config/app-config.js';
import { LedgerMetrics } from './ledger-metrics.js';

/**
 * With METRICS_PORT, the metrics are served on a listener of their own (GET /metrics, nothing else)
 * and not on PORT: the scraper reaches a port the public ingress never exposes. It stays open while
 * the API drains, so the last scrapes still see the shutdown, and closes with the application.
 */
@Injectable()
export class MetricsListener implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(MetricsListener.name);
  private server?: Server;

  constructor(
    private readonly metrics: LedgerMetrics,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const port = this.config.metricsPort;
    if (port === undefined) return;
    const server = createServer((request, response) => {
      if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: GET /metrics\n');
        return;
      }
      this.metrics.registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': this.metrics.registry.contentType, 'cache-control': 'no-store' }).end(text),
        (error: unknown) => {
          this.logger.error(`Metrics failed: ${String(error)}`);
          response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n');
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, () => resolve());
    });
    this.server = server;
    this.logger.log(`Metrics on http://localhost:${port}/metrics (METRICS_PORT)`);
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
