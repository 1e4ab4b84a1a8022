import { ApiProperty } from '@nestjs/swagger';
import type { AccountSummaryRecord } from './account-summary.record.js';

export class AccountResponse {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'Ada Lovelace' }) ownerName!: string;
  @ApiProperty({ example: 'EUR' }) currency!: string;
  @ApiProperty({ example: 1050, description: 'Integer of minor units (cents).' }) balance!: number;
  @ApiProperty({ enum: ['open', 'closed'] }) status!: 'open' | 'closed';
  @ApiProperty({ example: 3, description: 'Account stream version; also the ETag.' }) version!: number;
  @ApiProperty({ type: String, format: 'date-time' }) openedAt!: string;
  @ApiProperty({ type: String, format: 'date-time' }) updatedAt!: string;

  static of(record: AccountSummaryRecord): AccountResponse {
    return {
      id: record.id,
      ownerName: record.ownerName,
      currency: record.currency,
      balance: record.balance,
      status: record.status,
      version: record.version,
      openedAt: record.openedAt.toISOString(),
      updatedAt: record.updatedAt.toISOString(),
    };
  }
}

export class AccountListResponse {
  @ApiProperty({ type: [AccountResponse] }) items!: AccountResponse[];
  @ApiProperty({ type: String, nullable: true, description: 'Pass as `cursor` to get the next page; null on the last page.' })
  nextCursor!: string | null;
}
