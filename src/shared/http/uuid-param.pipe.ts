import { type ArgumentMetadata, ParseUUIDPipe } from '@nestjs/common';
import { ProblemException } from '../problem-details/problem.exception.js';

/**
 * UUIDs are case-insensitive, but stream ids are text: lower-case the id so that every route finds
 * the same account whatever case the caller used.
 */
class LowerCaseUuidPipe extends ParseUUIDPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<string | undefined | null> {
    const id = await super.transform(value, metadata);
    return typeof id === 'string' ? id.toLowerCase() : id;
  }
}

/** Path ids are UUIDs; anything else is a 400 with a stable code, before any handler runs. */
export function uuidParam(name = 'id'): ParseUUIDPipe {
  return new LowerCaseUuidPipe({
    exceptionFactory: () =>
      new ProblemException(400, 'INVALID_ID', 'Invalid id', `Path parameter "${name}" must be a UUID`, {
        errors: [{ field: name, messages: [`${name} must be a UUID`] }],
      }),
  });
}
