import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface InvalidField {
  readonly field: string;
  readonly messages: readonly string[];
}

/** RFC 9457 problem details, plus the stable `code` clients switch on. */
export interface ProblemDetails {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: string;
  readonly [extension: string]: unknown;
}

export function problemType(code: string): string {
  return `urn:ledger:problem:${code.toLowerCase().replaceAll('_', '-')}`;
}

export class InvalidFieldDto implements InvalidField {
  @ApiProperty({ example: 'amount' }) field!: string;
  @ApiProperty({ example: ['amount must be an integer number'] }) messages!: string[];
}

/** The Swagger schema of every error body. */
export class ProblemDetailsDto implements ProblemDetails {
  [extension: string]: unknown;
  @ApiProperty({
    example: 'urn:ledger:problem:account-insufficient-funds',
    description: 'Identifies the kind of problem; derived from `code`.',
  })
  type!: string;
  @ApiProperty({ example: 'Insufficient funds' }) title!: string;
  @ApiProperty({ example: 422 }) status!: number;
  @ApiProperty({ example: 'Account balance 100 is less than the requested 150' }) detail!: string;
  @ApiProperty({ example: 'ACCOUNT_INSUFFICIENT_FUNDS', description: 'Stable machine-readable code.' }) code!: string;
  @ApiPropertyOptional({ type: [InvalidFieldDto], description: 'Validation errors only: each invalid field.' })
  errors?: InvalidFieldDto[];
}
