import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsISO8601, IsInt, IsOptional, Max, Min } from 'class-validator';
import type { HistoryPoint } from '../../event-sourcing/index.js';
import { ValidationProblem } from '../problem-details/problem.exception.js';
import { IntegerParam } from './integer-param.js';

/** `?atVersion=N` or `?asOf=<ISO 8601 instant>`: exactly one. */
export class HistoryPointRequest {
  @ApiPropertyOptional({ minimum: 1, description: 'The state right after this version (event) of the stream.' })
  @IsOptional()
  @IntegerParam()
  @IsInt()
  @Min(1)
  @Max(2_147_483_647)
  atVersion?: number;

  @ApiPropertyOptional({
    example: '2026-11-27T09:30:00Z',
    description:
      'The state as it stood at this instant: the stream up to its first event recorded after it (always a prefix of the stream; an instant between two events gives the earlier one). ISO 8601 with a time zone, compared at millisecond precision.',
  })
  @IsOptional()
  @IsISO8601({ strict: true, strictSeparator: true })
  asOf?: string;

  static toPoint(request: HistoryPointRequest): HistoryPoint {
    const given = [request.atVersion !== undefined, request.asOf !== undefined].filter(Boolean).length;
    if (given !== 1) {
      throw new ValidationProblem([{ field: 'atVersion', messages: ['give exactly one of atVersion and asOf'] }]);
    }
    if (request.atVersion !== undefined) return { atVersion: request.atVersion };
    const asOf = new Date(request.asOf!);
    if (Number.isNaN(asOf.getTime()) || !/(Z|[+-]\d{2}:?\d{2})$/i.test(request.asOf!)) {
      throw new ValidationProblem([
        { field: 'asOf', messages: ['asOf must be an ISO 8601 instant with a time zone, e.g. 2026-11-27T09:30:00Z'] },
      ]);
    }
    return { asOf };
  }
}
