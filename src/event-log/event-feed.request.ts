import { ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsInt, IsOptional, IsString, Length, Matches, Max, Min } from 'class-validator';
import { IntegerParam } from '../shared/http/integer-param.js';

export class EventFeedRequest {
  @ApiPropertyOptional({ description: 'Position of the last event already seen (0 or absent: from the start).', minimum: 0 })
  @IsOptional()
  @IntegerParam()
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  after?: number;

  @ApiPropertyOptional({ minimum: 1, maximum: 1000, default: 100 })
  @IsOptional()
  @IntegerParam()
  @IsInt()
  @Min(1)
  @Max(1000)
  limit?: number;

  @ApiPropertyOptional({
    description: 'Only events of these types (comma-separated), e.g. accounts.MoneyDeposited',
    example: 'accounts.MoneyDeposited',
  })
  @IsOptional()
  @Transform(({ value }: { value: unknown }) =>
    typeof value === 'string'
      ? value
          .split(',')
          .map((type) => type.trim())
          .filter(Boolean)
      : value,
  )
  @IsArray()
  @ArrayMaxSize(50)
  @IsString({ each: true })
  @Length(1, 255, { each: true })
  type?: string[];

  @ApiPropertyOptional({ description: 'Only events of this stream, e.g. account-<uuid>' })
  @IsOptional()
  @IsString()
  @Length(1, 255)
  @Matches(/^[^\p{Cc}]*$/u, { message: 'stream must not contain control characters' })
  stream?: string;
}
