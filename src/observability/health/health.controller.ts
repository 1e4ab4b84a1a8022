import { Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { HealthCheckService, HealthIndicatorService, type HealthIndicatorResult, TypeOrmHealthIndicator } from '@nestjs/terminus';
import { DataSource } from 'typeorm';
import { PublicEndpoint } from '../../auth/public-endpoint.js';
import { PROJECTOR_DATA_SOURCE, ProjectionAdmin, QUERY_DATA_SOURCE } from '../../event-sourcing/index.js';
import { ApiProblemResponses } from '../../shared/http/api-problem-responses.decorator.js';
import { ProblemException } from '../../shared/problem-details/problem.exception.js';
import { ShutdownState } from './shutdown-state.js';

/** Each check answers within this, or counts as down: a probe must answer before its own timeout. */
const CHECK_TIMEOUT_MS = 1000;

/**
 * Kubernetes probes. Liveness says only that the process serves HTTP (a database outage must not
 * get every pod restarted); readiness says whether to send it traffic: every database side answers
 * and no SIGTERM arrived. Projection lag is reported, never failing readiness: a lagging projection
 * is served with read-your-writes waits, and taking every instance out would not make it catch up.
 */
@ApiTags('health')
@PublicEndpoint()
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly database: TypeOrmHealthIndicator,
    private readonly indicators: HealthIndicatorService,
    private readonly shutdown: ShutdownState,
    private readonly projections: ProjectionAdmin,
    private readonly command: DataSource,
    @Inject(QUERY_DATA_SOURCE) private readonly query: DataSource,
    @Inject(PROJECTOR_DATA_SOURCE) private readonly projector: DataSource,
  ) {}

  @Get('live')
  @ApiOperation({ summary: 'Liveness: 200 while the process can serve HTTP (no token needed)' })
  @ApiOkResponse({ description: '{"status":"ok"}' })
  @ApiProblemResponses({ 500: 'INTERNAL_ERROR' })
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('ready')
  @ApiOperation({
    summary: 'Readiness: 200 when every database side answers and the service is not shutting down (no token needed)',
    description:
      'Checks: `shutdown`, `database-command`, `database-query`, `database-projector` (a `SELECT 1` each, 1 s at most). ' +
      '`projections` reports each projection’s status and lag but never fails readiness.',
  })
  @ApiOkResponse({ description: 'Terminus result: status, info, error, details' })
  @ApiProblemResponses({ 500: 'INTERNAL_ERROR', 503: 'NOT_READY: the failing checks are named in `failing`, their results in `details`' })
  async ready(): Promise<unknown> {
    try {
      return await this.health.check([
        () => this.notShuttingDown(),
        () => this.database.pingCheck('database-command', { connection: this.command }).withTimeout(CHECK_TIMEOUT_MS),
        () => this.database.pingCheck('database-query', { connection: this.query }).withTimeout(CHECK_TIMEOUT_MS),
        () => this.database.pingCheck('database-projector', { connection: this.projector }).withTimeout(CHECK_TIMEOUT_MS),
        () => this.projectionLag(),
      ]);
    } catch (error) {
      if (!(error instanceof ServiceUnavailableException)) throw error;
      const result = error.getResponse() as { error?: Record<string, unknown>; details?: Record<string, unknown> };
      const failing = Object.keys(result.error ?? {});
      throw new ProblemException(503, 'NOT_READY', 'Not ready', `Failing check(s): ${failing.join(', ')}`, {
        failing,
        details: result.details ?? {},
      });
    }
  }

  private notShuttingDown(): HealthIndicatorResult<'shutdown'> {
    const check = this.indicators.check('shutdown');
    const since = this.shutdown.startedAt;
    return since ? check.down({ message: 'SIGTERM received: draining', since: since.toISOString() }) : check.up();
  }

  /** Always up: the lag is information for the operator (alerts use the metrics), not a reason to stop traffic. */
  private async projectionLag(): Promise<HealthIndicatorResult<'projections'>> {
    const check = this.indicators.check('projections');
    const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), CHECK_TIMEOUT_MS).unref());
    const reports = await Promise.race([this.projections.status().catch(() => undefined), timeout]);
    if (!reports) return check.up({ message: 'projection status unavailable right now' });
    return check.up(
      Object.fromEntries(
        reports.map((report) => [report.name, { status: report.status, lagEvents: report.lagEvents, lagMs: report.lagMs }]),
      ),
    );
  }
}
