import { ApiProperty } from '@nestjs/swagger';
import { IsISO4217CurrencyCode, IsString, Length, Matches } from 'class-validator';

export class OpenAccountRequest {
  @ApiProperty({ minLength: 1, maxLength: 100, example: 'Ada Lovelace' })
  @IsString()
  @Length(1, 100)
  @Matches(/\S/, { message: 'ownerName must not be blank' })
  @Matches(/^[^\p{Cc}]*$/u, { message: 'ownerName must not contain control characters' })
  ownerName!: string;

  @ApiProperty({ description: 'ISO 4217 currency code, upper case', example: 'EUR', minLength: 3, maxLength: 3, pattern: '^[A-Z]{3}$' })
  @IsISO4217CurrencyCode()
  // IsISO4217CurrencyCode upper-cases before its lookup, so 'eur' would pass and be stored as 'eur'.
  @Matches(/^[A-Z]{3}$/, { message: 'currency must be an upper-case ISO 4217 code such as EUR' })
  currency!: string;
}
