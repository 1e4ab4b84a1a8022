import { ApiHeader, ApiParam } from '@nestjs/swagger';

// Swagger pieces shared by the accounts controllers (commands, queries, history).

export const ETAG_HEADER = { ETag: { description: 'The account version, a strong entity tag such as "3"', schema: { type: 'string' } } };

export const IF_MATCH = ApiHeader({
  name: 'If-Match',
  required: false,
  description:
    'The ETag of the version you based this command on, e.g. "3". On a mismatch nothing is written and the answer is 412 with the current ETag. Without it, a concurrent change is retried internally (then 409).',
});

export const ACCOUNT_ID = ApiParam({ name: 'id', format: 'uuid' });

export const INTERNAL_ERROR = 'INTERNAL_ERROR: unexpected; nothing is leaked, the error is logged';

export const BODY_PROBLEMS = {
  413: 'PAYLOAD_TOO_LARGE: the body is larger than BODY_LIMIT_BYTES',
  415: 'UNSUPPORTED_MEDIA_TYPE: the body is not application/json',
  500: INTERNAL_ERROR,
};

export const COMMAND_PROBLEMS = {
  ...BODY_PROBLEMS,
  400: 'VALIDATION_FAILED (each invalid field listed), MALFORMED_JSON, BODY_TOO_DEEP (nested more than 32 levels), INVALID_TEXT (an unpaired surrogate), INVALID_ID (id is not a UUID), INVALID_IF_MATCH',
  404: 'ACCOUNT_NOT_FOUND',
  409: 'CONCURRENCY_CONFLICT: the account kept changing concurrently; retry',
  412: 'VERSION_MISMATCH: If-Match is not the current version (the current ETag is in the answer)',
  503: 'STREAM_BUSY: more commands were queued on this account on this instance than it could take within COMMAND_LANE_MAX_WAIT_MS; nothing was written; retry after Retry-After',
};
