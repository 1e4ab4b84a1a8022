import { ApiProperty } from '@nestjs/swagger';
import type { StateAtPoint } from '../../event-sourcing/index.js';
import type { AccountState } from '../account.js';

export class AccountStateResponse {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'Ada Lovelace' }) ownerName!: string;
  @ApiProperty({ example: 'EUR' }) currency!: string;
  @ApiProperty({ example: 1050, description: 'Integer of minor units.' }) balance!: number;
  @ApiProperty({ enum: ['open', 'closed'] }) status!: string;
  @ApiProperty({ example: 3, description: 'Version of the last event folded in.' }) version!: number;
  @ApiProperty({ type: String, format: 'date-time', description: 'When that event was recorded: the state held from then on.' })
  asOf!: string;

  static of(point: StateAtPoint<AccountState>): AccountStateResponse {
    const state = point.state as Exclude<AccountState, { status: 'none' }>;
    return {
      id: state.accountId,
      ownerName: state.ownerName,
      currency: state.currency,
      balance: state.balance,
      status: state.status,
      version: point.version,
      asOf: point.recordedAt.toISOString(),
    };
  }
}
