import { ApiProperty } from '@nestjs/swagger';
import { IsInt, IsPositive, Max } from 'class-validator';
import { MAX_MINOR_UNITS } from '../shared/money.js';

/** Body of deposits and withdrawals. */
export class AmountRequest {
  @ApiProperty({ description: 'Positive integer of minor units (cents): 1050 is 10.50 EUR.', example: 1050, minimum: 1, maximum: MAX_MINOR_UNITS })
  @IsInt()
  @IsPositive()
  @Max(MAX_MINOR_UNITS)
  amount!: number;
}
