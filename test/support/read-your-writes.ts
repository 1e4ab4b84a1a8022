import { expect } from '@jest/globals';
import type { Response, Test } from 'supertest';

// Read-your-writes over HTTP: projection-backed queries (GET /accounts, GET /accounts/{id},
// GET /accounts/{id}/transactions) are served by projections updated asynchronously after each
// commit. A query that must reflect a write passes the `position` the command answered, either as
// `?minPosition=` or as the `X-Min-Position` header; both are exercised by the suites.

export const MIN_POSITION_HEADER = 'X-Min-Position';
export const PROJECTION_POSITION_HEADER = 'x-projection-position';

export type Via = 'query' | 'header';

/** Makes a projection-backed GET wait until its projection has applied the event at `position`. */
export function reflecting(request: Test, position: number, via: Via = 'query'): Test {
  expect(Number.isSafeInteger(position) && position > 0).toBe(true);
  return via === 'query' ? request.query({ minPosition: position }) : request.set(MIN_POSITION_HEADER, String(position));
}

/** The X-Projection-Position of an answer, checked to be present and a non-negative integer. */
export function projectionPosition(response: Response): number {
  const raw = response.headers[PROJECTION_POSITION_HEADER];
  expect({ [PROJECTION_POSITION_HEADER]: raw }).toEqual({ [PROJECTION_POSITION_HEADER]: expect.stringMatching(/^(0|[1-9][0-9]*)$/) });
  const position = Number(raw);
  expect(Number.isSafeInteger(position)).toBe(true);
  return position;
}

/** The position of the last of these command answers that succeeded (2xx with a body position). */
export function lastPosition(responses: readonly Response[]): number {
  const positions = responses
    .filter((response) => response.status >= 200 && response.status < 300)
    .map((response) => response.body.position as number);
  expect(positions.length).toBeGreaterThan(0);
  for (const position of positions) expect(Number.isSafeInteger(position) && position > 0).toBe(true);
  return Math.max(...positions);
}
