import { expect } from '@jest/globals';

/** Anything with an HTTP status, headers and a parsed body (a supertest Response, an SSE refusal). */
export interface AnswerLike {
  readonly status: number;
  readonly headers: Record<string, unknown>;
  readonly body: any;
}

/**
 * Checks an RFC 9457 problem+json answer with this status and stable code, and returns its body.
 * The status and code are compared together, so a failure shows both (and the detail).
 */
export function expectProblemAnswer(answer: AnswerLike, status: number, code: string): Record<string, any> {
  expect({ status: answer.status, code: answer.body?.code, detail: answer.body?.detail }).toEqual({
    status,
    code,
    detail: expect.any(String),
  });
  expect(String(answer.headers['content-type'])).toMatch(/^application\/problem\+json(;|$)/);
  expect(answer.body).toEqual(
    expect.objectContaining({
      type: expect.stringMatching(/\S/),
      title: expect.stringMatching(/\S/),
      status,
      detail: expect.stringMatching(/\S/),
      code,
    }),
  );
  return answer.body;
}

/** A 400 VALIDATION_FAILED problem whose `errors` name at least one field. */
export function expectValidationProblem(answer: AnswerLike): Array<{ field: string; messages: string[] }> {
  const body = expectProblemAnswer(answer, 400, 'VALIDATION_FAILED');
  expect(Array.isArray(body.errors) && body.errors.length > 0).toBe(true);
  for (const error of body.errors) {
    expect(error).toEqual({ field: expect.stringMatching(/\S/), messages: expect.arrayContaining([expect.any(String)]) });
  }
  return body.errors;
}
