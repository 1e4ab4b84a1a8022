import { HttpException } from '@nestjs/common';
import { type InvalidField, problemType } from './problem-details.js';

/** An HTTP error that already knows its problem+json body (status, stable code, detail). */
export class ProblemException extends HttpException {
  constructor(
    status: number,
    readonly code: string,
    readonly title: string,
    detail: string,
    readonly extensions: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super({ type: problemType(code), title, status, detail, code, ...extensions }, status);
  }
}

export class ValidationProblem extends ProblemException {
  constructor(errors: readonly InvalidField[]) {
    const fields = errors.map((error) => error.field).join(', ');
    super(400, 'VALIDATION_FAILED', 'Invalid request', `Invalid field(s): ${fields}`, { errors });
  }
}
