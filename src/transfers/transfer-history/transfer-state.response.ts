import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import type { StateAtPoint } from '../../event-sourcing/index.js';
import type { TransferState } from '../transfer.js';

export class TransferStateResponse {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) fromAccountId!: string;
  @ApiProperty({ format: 'uuid' }) toAccountId!: string;
  @ApiProperty({ example: 2500 }) amount!: number;
  @ApiProperty({ example: 'EUR' }) currency!: string;
  @ApiPropertyOptional({ type: String, nullable: true }) reference!: string | null;
  @ApiProperty({
    enum: ['pending', 'debited', 'refunding', 'completed', 'failed'],
    description:
      'The process step: debited = the source was debited, the credit is next; refunding = the credit was refused, the refund is next.',
  })
  status!: string;
  @ApiPropertyOptional({ type: String, nullable: true }) failureCode!: string | null;
  @ApiProperty({ example: 2, description: 'Version of the last event folded in.' }) version!: number;
  @ApiProperty({ type: String, format: 'date-time', description: 'When that event was recorded.' }) asOf!: string;

  static of(point: StateAtPoint<TransferState>): TransferStateResponse {
    const state = point.state as Exclude<TransferState, { status: 'none' }>;
    return {
      id: state.transferId,
      fromAccountId: state.fromAccountId,
      toAccountId: state.toAccountId,
      amount: state.amount,
      currency: state.currency,
      reference: state.reference,
      status: state.status,
      failureCode: state.failure?.code ?? null,
      version: point.version,
      asOf: point.recordedAt.toISOString(),
    };
  }
}
