import { type ExecutionContext, Inject, Injectable, type PipeTransform, applyDecorators, createParamDecorator } from '@nestjs/common';
import { ApiHeader, ApiQuery } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { APP_CONFIG } from '../../config/app-config.provider.js';
import type { AppConfig } from '../../config/app-config.js';
import { ProjectionWaiter } from '../../event-sourcing/index.js';
import { ProblemException } from '../problem-details/problem.exception.js';
import { ApiProblemResponses } from './api-problem-responses.decorator.js';

export const PROJECTION_POSITION_HEADER = 'X-Projection-Position';
export const MIN_POSITION_HEADER = 'X-Min-Position';

/**
 * Documents a query endpoint served by a projection: `?minPosition=` / X-Min-Position, the 503 when
 * the projection does not get there in time, and (with PROJECTION_POSITION_DOC on the 200) the
 * X-Projection-Position header. The waiting itself is the @ProjectionRead parameter.
 */
export function ReadsProjection(name: string, mode: 'inline' | 'async'): MethodDecorator {
  const served =
    mode === 'async'
      ? `Served by the \`${name}\` projection, updated asynchronously after each commit (usually within milliseconds).`
      : `Served by the \`${name}\` projection, updated in the same transaction as each command.`;
  return applyDecorators(
    ApiQuery({
      name: 'minPosition',
      required: false,
      schema: { type: 'integer', minimum: 0 },
      description: `${served} Pass the \`position\` a command answered to wait (bounded by READ_YOUR_WRITES_TIMEOUT_MS) until this answer includes that write.`,
    }),
    ApiHeader({ name: MIN_POSITION_HEADER, required: false, description: 'Same as ?minPosition.' }),
    ApiProblemResponses({
      503: 'PROJECTION_NOT_CAUGHT_UP: the projection had not reached minPosition in time; retry after Retry-After seconds',
    }),
  );
}

/** The header every answer of a projection-backed endpoint carries (for Swagger). */
export const PROJECTION_POSITION_DOC = {
  [PROJECTION_POSITION_HEADER]: {
    description:
      'The log position this answer reflects: every event up to it (in commit order) is applied, and so is minPosition when one was given.',
    schema: { type: 'integer' },
  },
};

const NON_NEGATIVE_INTEGER = /^(0|[1-9][0-9]{0,15})$/;

function parseMinPosition(request: Request): number | undefined {
  const raw = request.query.minPosition ?? request.header(MIN_POSITION_HEADER);
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !NON_NEGATIVE_INTEGER.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new ProblemException(
      400,
      'INVALID_MIN_POSITION',
      'Invalid minPosition',
      'minPosition (or X-Min-Position) must be a non-negative integer log position',
      {
        errors: [{ field: 'minPosition', messages: ['minPosition must be a non-negative integer'] }],
      },
    );
  }
  return Number(raw);
}

interface ProjectionReadRequest {
  readonly projection: string;
  readonly request: Request;
  readonly response: Response;
}

/**
 * Waits until the projection reflects minPosition (when given), then sets X-Projection-Position.
 * A pipe, not an interceptor, so that it runs after the pipes of the parameters declared before it:
 * an invalid id or query is a 400 at once, never a wait that ends in 503.
 */
@Injectable()
export class WaitForProjection implements PipeTransform<ProjectionReadRequest, Promise<number>> {
  constructor(
    private readonly waiter: ProjectionWaiter,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async transform({ projection, request, response }: ProjectionReadRequest): Promise<number> {
    const minPosition = parseMinPosition(request);
    const reflected = await this.waiter.waitFor(projection, minPosition, this.config.readYourWritesTimeoutMs);
    // The checkpoint is in commit order: it can sit at a lower position than an event it covers.
    const position = Math.max(reflected, minPosition ?? 0);
    response.setHeader(PROJECTION_POSITION_HEADER, String(position));
    return position;
  }
}

const projectionRead = createParamDecorator((projection: string, context: ExecutionContext): ProjectionReadRequest => ({
  projection,
  request: context.switchToHttp().getRequest<Request>(),
  response: context.switchToHttp().getResponse<Response>(),
}));

/**
 * Read-your-writes for a query parameter list: declare it LAST, e.g.
 * `get(@Param('id', uuidParam()) id: string, @ProjectionRead('account-summary') _position: number)`.
 */
export const ProjectionRead = (projection: string): ParameterDecorator => projectionRead(projection, WaitForProjection);
