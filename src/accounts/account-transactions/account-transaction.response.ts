import { ApiProperty } from '@nestjs/swagger';
import type { AccountTransactionRecord } from './account-transaction.record.js';

export class AccountTransactionResponse {
  @ApiProperty({ enum: ['deposit', 'withdrawal', 'transfer-out', 'transfer-in', 'transfer-refund'] }) type!: string;
  @ApiProperty({ example: 1050, description: 'Integer of minor units, always positive; `type` says the direction.' })
  amount!: number;
  @ApiProperty({ example: 4200 }) balanceAfter!: number;
  @ApiProperty({ type: String, format: 'date-time' }) occurredAt!: string;
  @ApiProperty({ example: 1042, description: 'Log position of the event behind this movement.' }) position!: number;
  @ApiProperty({ type: String, format: 'uuid', nullable: true, description: 'The transfer this movement is a leg of.' })
  transferId!: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'The reference given with a deposit or withdrawal.' })
  reference!: string | null;

  static of(record: AccountTransactionRecord): AccountTransactionResponse {
    return {
      type: record.type,
      amount: record.amount,
      balanceAfter: record.balanceAfter,
      occurredAt: record.occurredAt.toISOString(),
      position: record.position,
      transferId: record.transferId,
      reference: record.reference,
    };
  }
}

export class AccountTransactionListResponse {
  @ApiProperty({ type: [AccountTransactionResponse] }) items!: AccountTransactionResponse[];
  @ApiProperty({ type: String, nullable: true, description: 'Pass as `cursor` for the next (older) page; null on the last page.' })
  nextCursor!: string | null;
}
