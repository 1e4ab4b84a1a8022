import { ApiProperty } from '@nestjs/swagger';
import type { RecordedEvent } from '../../event-sourcing/index.js';

export class AccountEventResponse {
  @ApiProperty({ example: 'accounts.MoneyDeposited' }) type!: string;
  @ApiProperty({ example: 2 }) version!: number;
  @ApiProperty({ example: 1042 }) position!: number;
  @ApiProperty({ example: 1 }) schemaVersion!: number;
  @ApiProperty({ type: 'object', additionalProperties: true, example: { accountId: '…', amount: 1050, balanceAfter: 1050 } })
  data!: object;
  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    description: 'eventId, correlationId, causationId, occurredAt',
  })
  metadata!: object;
  @ApiProperty({ type: String, format: 'date-time' }) recordedAt!: string;

  static of(event: RecordedEvent): AccountEventResponse {
    return {
      type: event.type,
      version: event.version,
      position: event.position,
      schemaVersion: event.schemaVersion,
      data: event.data,
      metadata: event.metadata,
      recordedAt: event.recordedAt.toISOString(),
    };
  }
}

export class AccountHistoryResponse {
  @ApiProperty({ type: [AccountEventResponse] }) items!: AccountEventResponse[];
}
