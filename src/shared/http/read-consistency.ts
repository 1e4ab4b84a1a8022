import {
  type CallHandler,
  type ExecutionContext,
  Inject,
  Injectable,
  type NestInterceptor,
  SetMetadata,
  applyDecorators,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ApiHeader, ApiQuery } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import type { Observable } from 'rxjs';
import { APP_CONFIG } from '../../config/app-config.provider.js';
import type { AppConfig } from '../../config/app-config.js';
import { ProjectionWaiter } from '../../event-sourcing/index.js';
import { ProblemException } from '../problem-details/problem.exception.js';
import { ApiProblemResponses } from './api-problem-responses.decorator.js';

const READS_PROJECTION = Symbol('reads-projection');
export const PROJECTION_POSITION_HEADER = 'X-Projection-Position';
export const MIN_POSITION_HEADER = 'X-Min-Position';

/**
 * Marks a query endpoint as served by a projection: it then accepts `?minPosition=` (or
 * X-Min-Position), waits until the projection has applied that log position, and says in
 * X-Projection-Position which position its answer reflects.
 */
export function ReadsProjection(name: string, mode: 'inline' | 'async'): MethodDecorator {
  const served = mode === 'async'
    ? `Served by the \`${name}\` projection, updated asynchronously after each commit (usually within milliseconds).`
    : `Served by the \`${name}\` projection, updated in the same transaction as each command.`;
  return applyDecorators(
    SetMetadata(READS_PROJECTION, name),
    ApiQuery({
      name: 'minPosition',
      required: false,
      type: Number,
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
    description: 'The log position this answer reflects (every event up to it, in commit order, is applied).',
    schema: { type: 'integer' },
  },
};

const NON_NEGATIVE_INTEGER = /^(0|[1-9][0-9]{0,15})$/;

function parseMinPosition(request: Request): number | undefined {
  const fromQuery = request.query.minPosition;
  const raw = fromQuery ?? request.header(MIN_POSITION_HEADER);
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !NON_NEGATIVE_INTEGER.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new ProblemException(400, 'INVALID_MIN_POSITION', 'Invalid minPosition', 'minPosition (or X-Min-Position) must be a non-negative integer log position', {
      errors: [{ field: 'minPosition', messages: ['minPosition must be a non-negative integer'] }],
    });
  }
  return Number(raw);
}

@Injectable()
export class ReadConsistencyInterceptor implements NestInterceptor {
  constructor(
    private readonly reflector: Reflector,
    private readonly waiter: ProjectionWaiter,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    const projection = this.reflector.get<string | undefined>(READS_PROJECTION, context.getHandler());
    if (!projection) return next.handle();
    const http = context.switchToHttp();
    const minPosition = parseMinPosition(http.getRequest<Request>());
    const position = await this.waiter.waitFor(projection, minPosition, this.config.readYourWritesTimeoutMs);
    http.getResponse<Response>().setHeader(PROJECTION_POSITION_HEADER, String(position));
    return next.handle();
  }
}
