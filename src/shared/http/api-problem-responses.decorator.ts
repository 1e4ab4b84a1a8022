import { applyDecorators } from '@nestjs/common';
import { ApiResponse, getSchemaPath } from '@nestjs/swagger';
import { PROBLEM_CONTENT_TYPE } from '../problem-details/problem-details.js';

/** Headers that go with some error answers. */
const HEADERS_OF_STATUS: Record<number, Record<string, { description: string; schema: object }>> = {
  429: { 'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer', example: 5 } } },
  412: { ETag: { description: 'The current version of the resource', schema: { type: 'string', example: '"4"' } } },
  503: { 'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer', example: 1 } } },
};

/** Documents error answers as application/problem+json, each with the codes it can carry. */
export function ApiProblemResponses(responses: Record<number, string>): MethodDecorator {
  return applyDecorators(
    ...Object.entries(responses).map(([status, description]) =>
      ApiResponse({
        status: Number(status),
        description,
        content: { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: getSchemaPath('ProblemDetailsDto') } } },
        headers: HEADERS_OF_STATUS[Number(status)],
      }),
    ),
  );
}
