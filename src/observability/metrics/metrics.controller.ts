import { Controller, Get, Header } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { PublicEndpoint } from '../../auth/public-endpoint.js';
import { ApiProblemResponses } from '../../shared/http/api-problem-responses.decorator.js';
import { LedgerMetrics } from './ledger-metrics.js';

/** Prometheus scrapes this (no token: a scraper carries none; the answer holds counts, no ledger content). */
@ApiTags('metrics')
@PublicEndpoint()
@Controller('metrics')
export class MetricsController {
  constructor(private readonly metrics: LedgerMetrics) {}

  @Get()
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  @ApiOperation({
    summary: 'Prometheus metrics in the text exposition format (no token needed)',
    description:
      'HTTP latency by route template, commands by outcome, appends, the queues of commands per account (lanes), projection lag and status, live feed connections, process and Node.js metrics.',
  })
  @ApiProduces('text/plain')
  @ApiOkResponse({ description: 'Prometheus text format 0.0.4', content: { 'text/plain': { schema: { type: 'string' } } } })
  @ApiProblemResponses({ 500: 'INTERNAL_ERROR' })
  scrape(): Promise<string> {
    return this.metrics.registry.metrics();
  }
}
