import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import type { TransferSummaryRecord } from './transfer-summary.record.js';

export class TransferAcceptedResponse {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ enum: ['pending'] }) status!: 'pending';
  @ApiProperty({ example: 1042, description: 'Log position of TransferRequested: pass it as minPosition to read the transfer.' })
  position!: number;
}

export class TransferResponse {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) fromAccountId!: string;
  @ApiProperty({ format: 'uuid' }) toAccountId!: string;
  @ApiProperty({ example: 2500, description: 'Integer of minor units.' }) amount!: number;
  @ApiProperty({ example: 'EUR' }) currency!: string;
  @ApiPropertyOptional({ type: String, nullable: true }) reference!: string | null;
  @ApiProperty({ enum: ['pending', 'completed', 'failed'] }) status!: string;
  @ApiPropertyOptional({
    type: String,
    nullable: true,
    description:
      'Why it failed: ACCOUNT_INSUFFICIENT_FUNDS, ACCOUNT_CLOSED, ACCOUNT_CURRENCY_MISMATCH, ACCOUNT_BALANCE_LIMIT_EXCEEDED, ACCOUNT_NOT_FOUND',
  })
  failureCode!: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) failureReason!: string | null;
  @ApiProperty({ description: 'True when the source had been debited and was refunded (the credit was refused).' }) refunded!: boolean;
  @ApiProperty({ type: String, format: 'date-time' }) requestedAt!: string;
  @ApiProperty({ type: String, format: 'date-time' }) updatedAt!: string;
  @ApiPropertyOptional({ type: String, format: 'date-time', nullable: true, description: 'When it completed or failed.' })
  completedAt!: string | null;

  static of(record: TransferSummaryRecord): TransferResponse {
    return {
      id: record.id,
      fromAccountId: record.fromAccountId,
      toAccountId: record.toAccountId,
      amount: record.amount,
      currency: record.currency,
      reference: record.reference,
      status: record.status,
      failureCode: record.failureCode,
      failureReason: record.failureReason,
      refunded: record.refunded,
      requestedAt: record.requestedAt.toISOString(),
      updatedAt: record.updatedAt.toISOString(),
      completedAt: record.completedAt?.toISOString() ?? null,
    };
  }
}

export class TransferListResponse {
  @ApiProperty({ type: [TransferResponse] }) items!: TransferResponse[];
  @ApiProperty({ type: String, nullable: true, description: 'Pass as `cursor` for the next (older) page; null on the last page.' })
  nextCursor!: string | null;
}
