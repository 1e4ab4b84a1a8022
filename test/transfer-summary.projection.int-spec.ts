import { afterAll, beforeAll, describe, it } from '@jest/globals';
import { TransferSummaryProjection } from '../src/transfers/transfer-summary/transfer-summary.projection.js';
import { transferStreamId } from '../src/transfers/transfer.js';
import {
  CreditRefused,
  SourceDebited,
  SourceRefunded,
  TargetCredited,
  TransferCompleted,
  TransferFailed,
  TransferRequested,
} from '../src/transfers/transfer.events.js';
import { projectionSpec } from '../src/event-sourcing/testing/projection-spec.js';
import { TestEventLog } from '../src/event-sourcing/testing/test-event-log.js';
import { type ProjectionDatabase, startProjectionDatabase } from './support/projection-database.js';

// The transfers read table (a projection of per-event handlers), given recorded events, with projectionSpec.

const transferId = '44444444-4444-4444-8444-444444444444';
const from = '11111111-1111-4111-8111-111111111111';
const to = '22222222-2222-4222-8222-222222222222';

let db: ProjectionDatabase;
beforeAll(async () => {
  db = await startProjectionDatabase();
});
afterAll(() => db?.close());

const spec = projectionSpec(new TransferSummaryProjection(), {
  dataSource: () => db.dataSource,
  rows: `SELECT id::text, from_account_id::text, to_account_id::text, amount::text, currency, reference, status, failure_code,
                failure_reason, refunded, requested_at, updated_at, completed_at, requested_position::text, last_position::text
         FROM transfers ORDER BY requested_position`,
});

function transfer() {
  const log = new TestEventLog();
  const stream = transferStreamId(transferId);
  const requested = log.record(
    stream,
    new TransferRequested({ transferId, fromAccountId: from, toAccountId: to, amount: 25, currency: 'EUR', reference: 'rent' }),
  );
  const pending = {
    id: transferId,
    from_account_id: from,
    to_account_id: to,
    amount: '25',
    currency: 'EUR',
    reference: 'rent',
    status: 'pending',
    failure_code: null,
    failure_reason: null,
    refunded: false,
    requested_at: new Date(requested.metadata.occurredAt),
    updated_at: new Date(requested.metadata.occurredAt),
    completed_at: null,
    requested_position: '1',
    last_position: '1',
  };
  return { log, stream, requested, pending };
}

describe('transfers projection', () => {
  it('a requested transfer is pending; the steps before its outcome change nothing', async () => {
    const { log, stream, requested, pending } = transfer();
    const steps = log.recordAll(stream, [new SourceDebited({ transferId }), new TargetCredited({ transferId })]);
    await spec.given([requested]).when(steps).then([pending]);
  });

  it('a completed transfer: status, completion time and last position from TransferCompleted', async () => {
    const { log, stream, requested, pending } = transfer();
    const steps = log.recordAll(stream, [new SourceDebited({ transferId }), new TargetCredited({ transferId })]);
    const completed = log.record(stream, new TransferCompleted({ transferId }));
    const at = new Date(completed.metadata.occurredAt);
    await spec
      .given([requested, ...steps])
      .when([completed])
      .then([{ ...pending, status: 'completed', updated_at: at, completed_at: at, last_position: '4' }]);
  });

  it('a failed transfer, refunded after a refused credit: the code, the reason and refunded', async () => {
    const { log, stream, requested, pending } = transfer();
    const steps = log.recordAll(stream, [
      new SourceDebited({ transferId }),
      new CreditRefused({ transferId, code: 'ACCOUNT_CLOSED', reason: 'closed' }),
      new SourceRefunded({ transferId }),
    ]);
    const failed = log.record(stream, new TransferFailed({ transferId, code: 'ACCOUNT_CLOSED', reason: 'closed', refunded: true }));
    const at = new Date(failed.metadata.occurredAt);
    await spec
      .given([requested])
      .when([...steps, failed])
      .then([
        {
          ...pending,
          status: 'failed',
          failure_code: 'ACCOUNT_CLOSED',
          failure_reason: 'closed',
          refunded: true,
          updated_at: at,
          completed_at: at,
          last_position: '5',
        },
      ]);
  });

  it('is idempotent: the request and the outcome applied again change nothing', async () => {
    const { log, stream, requested } = transfer();
    const outcome = log.recordAll(stream, [
      new SourceDebited({ transferId }),
      new TargetCredited({ transferId }),
      new TransferCompleted({ transferId }),
    ]);
    await spec.given([requested]).when(outcome).thenIdempotent();
  });
});
