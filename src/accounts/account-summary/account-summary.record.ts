import { Column, Entity, PrimaryColumn } from 'typeorm';
import { safeInteger } from '../../shared/safe-integer.transformer.js';
import type { AccountStatus } from '../account.js';

/** Read table `account_summaries`: one row per account, written only by AccountSummaryProjection. */
@Entity('account_summaries')
export class AccountSummaryRecord {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ type: 'text', name: 'owner_name' }) ownerName!: string;
  @Column({ type: 'char', length: 3 }) currency!: string;
  @Column({ type: 'bigint', transformer: safeInteger }) balance!: number;
  @Column({ type: 'text' }) status!: AccountStatus;
  @Column({ type: 'integer' }) version!: number;
  @Column({ type: 'timestamptz', name: 'opened_at' }) openedAt!: Date;
  @Column({ type: 'timestamptz', name: 'updated_at' }) updatedAt!: Date;
  /** Position of AccountOpened: the stable sort key of the account list (keyset pagination). */
  @Column({ type: 'bigint', name: 'opened_position', transformer: safeInteger }) openedPosition!: number;
  /** Position of the last event applied: makes applying an event twice a no-op. */
  @Column({ type: 'bigint', name: 'last_position', transformer: safeInteger }) lastPosition!: number;
}
