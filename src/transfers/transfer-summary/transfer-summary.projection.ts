import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { type PreparedStatement, type Projection, ProjectionHandlers, type RecordedEvent, prepared } from '../../event-sourcing/index.js';
import { TransferCompleted, TransferFailed, TransferRequested } from '../transfer.events.js';

/** Prepared (sql.ts): planning these ran longer than executing them, on every batch (docs/BENCHMARKS.md). */
const INSERT_TRANSFER_SQL: PreparedStatement = {
  name: 'ledger_transfers_insert_v1',
  text: `INSERT INTO transfers (id, from_account_id, to_account_id, amount, currency, reference, status, refunded,
                               requested_at, updated_at, requested_position, last_position)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', false, $7, $7, $8, $8)
         ON CONFLICT (id) DO NOTHING`,
};

const FINISH_TRANSFER_SQL: PreparedStatement = {
  name: 'ledger_transfers_finish_v1',
  text: `UPDATE transfers SET status = $2, failure_code = $3, failure_reason = $4, refunded = $5,
              updated_at = $6, completed_at = $6, last_position = $7
       WHERE id = $1 AND status = 'pending'`,
};

/**
 * Keeps `transfers`, asynchronously. Idempotent: the request inserts once (ON CONFLICT); a transfer
 * has exactly one outcome (completed or failed, each its stream's last event), written only while
 * the row is still pending, so a replayed outcome changes nothing. No guard on log positions: per
 * stream, only the stream's own order counts.
 */
@Injectable()
export class TransferSummaryProjection implements Projection {
  readonly name = 'transfers';
  readonly mode = 'async';
  readonly tables = ['transfers'];
  readonly handlers = new ProjectionHandlers()
    .on(TransferRequested, async (event, manager) => {
      const data = event.data;
      await prepared(manager, INSERT_TRANSFER_SQL, [
        data.transferId,
        data.fromAccountId,
        data.toAccountId,
        data.amount,
        data.currency,
        data.reference,
        event.metadata.occurredAt,
        event.position,
      ]);
    })
    .on(TransferCompleted, (event, manager) =>
      this.finish(manager, event, { status: 'completed', failureCode: null, failureReason: null, refunded: false }),
    )
    .on(TransferFailed, (event, manager) =>
      this.finish(manager, event, {
        status: 'failed',
        failureCode: event.data.code,
        failureReason: event.data.reason,
        refunded: event.data.refunded,
      }),
    );

  private async finish(
    manager: EntityManager,
    event: RecordedEvent<{ transferId: string }>,
    outcome: { status: string; failureCode: string | null; failureReason: string | null; refunded: boolean },
  ): Promise<void> {
    await prepared(manager, FINISH_TRANSFER_SQL, [
      event.data.transferId,
      outcome.status,
      outcome.failureCode,
      outcome.failureReason,
      outcome.refunded,
      event.metadata.occurredAt,
      event.position,
    ]);
  }
}
