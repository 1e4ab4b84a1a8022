import { ApiHideProperty } from '@nestjs/swagger';
import { Allow } from 'class-validator';

/**
 * Base of query-string DTOs of projection-backed endpoints: lets `minPosition` through the
 * unknown-property check; ReadConsistencyInterceptor validates and uses it (see ReadsProjection).
 */
export class ProjectionQueryRequest {
  @ApiHideProperty()
  @Allow()
  minPosition?: unknown;
}
