import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsInt, IsOptional, IsPositive, IsString, Length, Matches, Max } from 'class-validator';
import { MAX_MINOR_UNITS } from '../shared/money.js';

/** Body of deposits and withdrawals. */
export class AmountRequest {
  @ApiProperty({
    description: 'Positive integer of minor units (cents): 1050 is 10.50 EUR.',
    example: 1050,
    minimum: 1,
    maximum: MAX_MINOR_UNITS,
  })
  @IsInt()
  @IsPositive()
  @Max(MAX_MINOR_UNITS)
  amount!: number;

  @ApiPropertyOptional({
    maxLength: 140,
    example: 'Salary November',
    description: 'Free text kept on the event and shown in the transaction history.',
  })
  @IsOptional()
  @IsString()
  @Length(1, 140)
  @Matches(/^[^\p{Cc}]*$/u, { message: 'reference must not contain control characters' })
  reference?: string;
}
