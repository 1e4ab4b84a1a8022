import type { PipeTransform } from '@nestjs/common';
import { ValidationProblem } from '../problem-details/problem.exception.js';

/** For commands that take no body: an empty body or `{}` passes, any field is refused as unknown. */
export class NoBodyFieldsPipe implements PipeTransform {
  transform(body: unknown): undefined {
    if (body === undefined || body === null) return undefined;
    const fields = typeof body === 'object' && !Array.isArray(body) ? Object.keys(body) : ['(body)'];
    if (fields.length) {
      throw new ValidationProblem(fields.map((field) => ({ field, messages: [`property ${field} should not exist`] })));
    }
    return undefined;
  }
}
