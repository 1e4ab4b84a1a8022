import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsInt, IsOptional, IsPositive, IsString, IsUUID, Length, Matches, Max, ValidateBy } from 'class-validator';

/** UUIDs are case-insensitive; ids are compared and stored lower-case, like path ids. */
const lowerCase = Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? value.toLowerCase() : value));
import { MAX_MINOR_UNITS } from '../../shared/money.js';

/** A property that must differ from another one of the same object. */
function DiffersFrom(property: string) {
  return ValidateBy({
    name: 'differsFrom',
    constraints: [property],
    validator: {
      validate: (value, args) => value !== (args?.object as Record<string, unknown>)[property],
      defaultMessage: (args) => `${args?.property} must differ from ${property}`,
    },
  });
}

export class RequestTransferRequest {
  @ApiProperty({ format: 'uuid' })
  @lowerCase
  @IsUUID()
  fromAccountId!: string;

  @ApiProperty({ format: 'uuid', description: 'Must differ from fromAccountId.' })
  @lowerCase
  @IsUUID()
  @DiffersFrom('fromAccountId')
  toAccountId!: string;

  @ApiProperty({
    description: "Positive integer of minor units, in the source account's currency.",
    example: 2500,
    minimum: 1,
    maximum: MAX_MINOR_UNITS,
  })
  @IsInt()
  @IsPositive()
  @Max(MAX_MINOR_UNITS)
  amount!: number;

  @ApiPropertyOptional({ maxLength: 140, example: 'Invoice 2026-117' })
  @IsOptional()
  @IsString()
  @Length(1, 140)
  @Matches(/^[^\p{Cc}]*$/u, { message: 'reference must not contain control characters' })
  reference?: string;
}
