import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsInt, IsOptional, IsString, Length, Max, Min } from 'class-validator';
import { IntegerParam } from '../shared/http/integer-param.js';

/** Most events a page of a per-stream event list holds, and how many it holds by default (as GET /events). */
export const EVENT_PAGE_MAX = 1000;
export const EVENT_PAGE_DEFAULT = 100;

/** The query of a per-stream event list: keyset pagination with an opaque cursor, like the other lists. */
export class EventListRequest {
  @ApiPropertyOptional({ minimum: 1, maximum: EVENT_PAGE_MAX, default: EVENT_PAGE_DEFAULT })
  @IsOptional()
  @IntegerParam()
  @IsInt()
  @Min(1)
  @Max(EVENT_PAGE_MAX)
  limit?: number;

  @ApiPropertyOptional({ description: 'The `nextCursor` of the previous page.' })
  @IsOptional()
  @IsString()
  @Length(1, 200)
  cursor?: string;
}
