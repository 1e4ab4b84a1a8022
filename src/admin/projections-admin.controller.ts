import { Body, Controller, Get, HttpCode, Param, Post, Res } from '@nestjs/common';
import { AdminEndpoint } from '../auth/scopes.js';
import { ApiAcceptedResponse, ApiExtraModels, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { ProjectionAdmin } from '../event-sourcing/index.js';
import { ApiProblemResponses } from '../shared/http/api-problem-responses.decorator.js';
import { NoBodyFieldsPipe } from '../shared/http/no-body-fields.pipe.js';
import { ProblemDetailsDto } from '../shared/problem-details/problem-details.js';
import { ProjectionListResponse, ProjectionStatusResponse, SkipResponse } from './projection-status.response.js';

const NAME = ApiParam({ name: 'name', example: 'account-summary' });
const UNKNOWN = { 404: 'UNKNOWN_PROJECTION', 500: 'INTERNAL_ERROR' };

/** Operating the projections: status and lag, rebuilds, and what to do with an event that fails. */
@ApiTags('admin')
@ApiExtraModels(ProblemDetailsDto)
@AdminEndpoint()
@Controller('admin/projections')
export class ProjectionsAdminController {
  constructor(private readonly admin: ProjectionAdmin) {}

  @Get()
  @ApiOperation({ summary: 'Every projection: mode, status, checkpoint, lag, last error, rebuild progress' })
  @ApiOkResponse({ type: ProjectionListResponse })
  @ApiProblemResponses({ 500: 'INTERNAL_ERROR' })
  async list(): Promise<ProjectionListResponse> {
    return { items: (await this.admin.status()).map((report) => ProjectionStatusResponse.of(report)) };
  }

  @Get(':name')
  @ApiOperation({ summary: 'One projection' })
  @NAME
  @ApiOkResponse({ type: ProjectionStatusResponse })
  @ApiProblemResponses(UNKNOWN)
  async one(@Param('name') name: string): Promise<ProjectionStatusResponse> {
    return ProjectionStatusResponse.of(await this.admin.statusOf(name));
  }

  @Post(':name/rebuild')
  @HttpCode(202)
  @ApiOperation({
    summary: 'Rebuild from the whole log without downtime',
    description:
      'Builds a fresh copy of the read tables in the background while queries keep being served from the current ones, then swaps the content in atomically and hands over to the live runner. Follow progress at the Location.',
  })
  @NAME
  @ApiAcceptedResponse({
    type: ProjectionStatusResponse,
    headers: { Location: { description: '/admin/projections/{name}', schema: { type: 'string' } } },
  })
  @ApiProblemResponses({
    ...UNKNOWN,
    400: 'VALIDATION_FAILED (this call takes no body)',
    409: 'PROJECTION_NOT_REBUILDABLE: a process manager keeps no table',
  })
  async rebuild(
    @Param('name') name: string,
    @Body(NoBodyFieldsPipe) _body: undefined,
    @Res({ passthrough: true }) response: Response,
  ): Promise<ProjectionStatusResponse> {
    const report = await this.admin.rebuild(name);
    response.location(`/admin/projections/${encodeURIComponent(name)}`);
    return ProjectionStatusResponse.of(report);
  }

  @Post(':name/retry')
  @HttpCode(200)
  @ApiOperation({ summary: 'Retry the event a failed projection stopped at' })
  @NAME
  @ApiOkResponse({ type: ProjectionStatusResponse })
  @ApiProblemResponses({ ...UNKNOWN, 400: 'VALIDATION_FAILED (this call takes no body)', 409: 'PROJECTION_NOT_FAILED' })
  async retry(@Param('name') name: string, @Body(NoBodyFieldsPipe) _body: undefined): Promise<ProjectionStatusResponse> {
    return ProjectionStatusResponse.of(await this.admin.retry(name));
  }

  @Post(':name/skip')
  @HttpCode(200)
  @ApiOperation({ summary: 'Skip the event a failed projection stopped at (recorded), and go on' })
  @NAME
  @ApiOkResponse({ type: SkipResponse })
  @ApiProblemResponses({ ...UNKNOWN, 400: 'VALIDATION_FAILED (this call takes no body)', 409: 'PROJECTION_NOT_FAILED' })
  async skip(@Param('name') name: string, @Body(NoBodyFieldsPipe) _body: undefined): Promise<SkipResponse> {
    const { skippedPosition, report } = await this.admin.skip(name);
    return { skippedPosition, projection: ProjectionStatusResponse.of(report) };
  }
}
