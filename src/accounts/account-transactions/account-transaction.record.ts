import { Column, Entity, PrimaryColumn } from 'typeorm';
import { safeInteger } from '../../shared/safe-integer.transformer.js';

export type AccountTransactionType = 'deposit' | 'withdrawal' | 'transfer-out' | 'transfer-in' | 'transfer-refund';

/** Read table `account_transactions`: one row per money movement, keyed by its event's position. */
@Entity('account_transactions')
export class AccountTransactionRecord {
  @PrimaryColumn({ type: 'bigint', transformer: safeInteger }) position!: number;
  @Column({ type: 'uuid', name: 'account_id' }) accountId!: string;
  @Column({ type: 'text' }) type!: AccountTransactionType;
  @Column({ type: 'bigint', transformer: safeInteger }) amount!: number;
  @Column({ type: 'bigint', name: 'balance_after', transformer: safeInteger }) balanceAfter!: number;
  @Column({ type: 'timestamptz', name: 'occurred_at' }) occurredAt!: Date;
  @Column({ type: 'uuid', name: 'transfer_id', nullable: true }) transferId!: string | null;
  @Column({ type: 'text', nullable: true }) reference!: string | null;
}
