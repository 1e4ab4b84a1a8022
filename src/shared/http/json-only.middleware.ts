import type { NextFunction, Request, Response } from 'express';
import { ProblemException } from '../problem-details/problem.exception.js';

const JSON_MEDIA_TYPE = /^application\/([a-z0-9.+-]+\+)?json$/i;

/** A request that carries a body must carry JSON: anything else is a 415, never silently ignored. */
export function jsonOnly(request: Request, _response: Response, next: NextFunction): void {
  const hasBody = request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0;
  const mediaType = (request.headers['content-type'] ?? '').split(';')[0].trim();
  if (hasBody && !JSON_MEDIA_TYPE.test(mediaType)) {
    next(
      new ProblemException(
        415,
        'UNSUPPORTED_MEDIA_TYPE',
        'Unsupported media type',
        `Request bodies must be application/json, got "${mediaType || 'none'}"`,
      ),
    );
    return;
  }
  next();
}
