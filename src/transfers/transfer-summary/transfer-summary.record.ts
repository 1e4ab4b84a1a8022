import { Column, Entity, PrimaryColumn } from 'typeorm';
import { safeInteger } from '../../shared/safe-integer.transformer.js';

export type TransferSummaryStatus = 'pending' | 'completed' | 'failed';

/** Read table `transfers`: one row per transfer, written only by TransferSummaryProjection. */
@Entity('transfers')
export class TransferSummaryRecord {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ type: 'uuid', name: 'from_account_id' }) fromAccountId!: string;
  @Column({ type: 'uuid', name: 'to_account_id' }) toAccountId!: string;
  @Column({ type: 'bigint', transformer: safeInteger }) amount!: number;
  @Column({ type: 'char', length: 3 }) currency!: string;
  @Column({ type: 'text', nullable: true }) reference!: string | null;
  @Column({ type: 'text' }) status!: TransferSummaryStatus;
  @Column({ type: 'text', name: 'failure_code', nullable: true }) failureCode!: string | null;
  @Column({ type: 'text', name: 'failure_reason', nullable: true }) failureReason!: string | null;
  @Column({ type: 'boolean' }) refunded!: boolean;
  @Column({ type: 'timestamptz', name: 'requested_at' }) requestedAt!: Date;
  @Column({ type: 'timestamptz', name: 'updated_at' }) updatedAt!: Date;
  @Column({ type: 'timestamptz', name: 'completed_at', nullable: true }) completedAt!: Date | null;
  @Column({ type: 'bigint', name: 'requested_position', transformer: safeInteger }) requestedPosition!: number;
  @Column({ type: 'bigint', name: 'last_position', transformer: safeInteger }) lastPosition!: number;
}
