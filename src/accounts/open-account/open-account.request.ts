import { ApiProperty } from '@nestjs/swagger';
import { IsISO4217CurrencyCode, IsString, Length, Matches } from 'class-validator';

export class OpenAccountRequest {
  @ApiProperty({ minLength: 1, maxLength: 100, example: 'Ada Lovelace' })
  @IsString()
  @Length(1, 100)
  @Matches(/\S/, { message: 'ownerName must not be blank' })
  @Matches(/^[^\p{Cc}]*$/u, { message: 'ownerName must not contain control characters' })
  ownerName!: string;

  @ApiProperty({ description: 'ISO 4217 currency code', example: 'EUR', minLength: 3, maxLength: 3 })
  @IsISO4217CurrencyCode()
  currency!: string;
}
