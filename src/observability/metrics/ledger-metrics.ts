import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The outcomes of a command, as `ledger_commands_total{outcome}` counts them (see command-outcome.ts). */
export const COMMAND_OUTCOMES = ['appended', 'rejected', 'conflict', 'precondition_failed', 'busy', 'error'] as const;
export type CommandOutcome = (typeof COMMAND_OUTCOMES)[number];

/**
 * Every metric the service exposes, in a registry of its own (not prom-client's global one: two
 * applications in one process, as in the tests, must not count into each other). Counters are
 * incremented where things happen (instrumentation.ts, http-metrics.middleware.ts); the projection
 * and live-feed gauges are filled at scrape time (metrics-collectors.ts), so they cost nothing between scrapes.
 */
@Injectable()
export class LedgerMetrics {
  readonly registry = new Registry();

  readonly httpRequestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests by method, route template (never the raw URL) and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly commands = new Counter({
    name: 'ledger_commands_total',
    help: 'Commands executed, by command and outcome (appended, rejected, conflict, precondition_failed, busy, error)',
    labelNames: ['command', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly appendDuration = new Histogram({
    name: 'ledger_event_store_append_duration_seconds',
    help: 'EventStore.append calls, from the call to its answer (group commit included)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly eventsAppended = new Counter({
    name: 'ledger_events_appended_total',
    help: 'Events appended and committed by this process',
    registers: [this.registry],
  });

  readonly idempotencyReplays = new Counter({
    name: 'ledger_idempotency_replays_total',
    help: 'Requests answered from a stored Idempotency-Key answer (Idempotent-Replayed: true)',
    registers: [this.registry],
  });

  readonly projectionLagEvents = new Gauge({
    name: 'ledger_projection_lag_events',
    help: 'Committed events a projection has not applied yet (at scrape time)',
    labelNames: ['projection'] as const,
    registers: [this.registry],
  });

  readonly projectionLagSeconds = new Gauge({
    name: 'ledger_projection_lag_seconds',
    help: 'How long the oldest event a projection has not applied has been waiting (at scrape time)',
    labelNames: ['projection'] as const,
    registers: [this.registry],
  });

  readonly projectionStatus = new Gauge({
    name: 'ledger_projection_status',
    help: 'A projection’s status: 1 for the current one, 0 for the others',
    labelNames: ['projection', 'status'] as const,
    registers: [this.registry],
  });

  readonly laneWait = new Histogram({
    name: 'ledger_command_lane_wait_seconds',
    help: 'How long commands (and units of work after a lost race) waited for their turn on their stream in this process (0 when it was free)',
    buckets: [0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly lanesWaiting = new Gauge({
    name: 'ledger_command_lanes_waiting',
    help: 'Commands waiting now for the commands ahead of them on their stream in this process (at scrape time)',
    registers: [this.registry],
  });

  readonly lanesBusy = new Gauge({
    name: 'ledger_command_lanes_busy',
    help: 'Streams with a command running or queued in this process (at scrape time)',
    registers: [this.registry],
  });

  readonly liveFeedConnections = new Gauge({
    name: 'ledger_live_feed_connections',
    help: 'Open /events/live streams in this process (at scrape time)',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
