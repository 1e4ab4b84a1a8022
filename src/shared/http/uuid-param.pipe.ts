import { ParseUUIDPipe } from '@nestjs/common';
import { ProblemException } from '../problem-details/problem.exception.js';

/** Path ids are UUIDs; anything else is a 400 with a stable code, before any handler runs. */
export function uuidParam(name = 'id'): ParseUUIDPipe {
  return new ParseUUIDPipe({
    exceptionFactory: () =>
      new ProblemException(400, 'INVALID_ID', 'Invalid id', `Path parameter "${name}" must be a UUID`, {
        errors: [{ field: name, messages: [`${name} must be a UUID`] }],
      }),
  });
}
