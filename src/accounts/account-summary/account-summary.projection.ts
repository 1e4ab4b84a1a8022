import { Injectable } from '@nestjs/common';
import { type EntityManager, LessThan } from 'typeorm';
import { type Projection, ProjectionHandlers, type RecordedEvent } from '../../event-sourcing/index.js';
import { AccountClosed, AccountOpened, MoneyDeposited, MoneyWithdrawn } from '../account.events.js';
import { AccountSummaryRecord } from './account-summary.record.js';

/**
 * Keeps `account_summaries`, inline: in the same transaction as the append, so a query answered
 * right after a command already reflects it. Every handler is idempotent (guarded by last_position),
 * so replaying an event, or the whole log during a rebuild, gives the same rows.
 */
@Injectable()
export class AccountSummaryProjection implements Projection {
  readonly name = 'account-summary';
  readonly mode = 'inline';
  readonly tables = ['account_summaries'];
  readonly handlers = new ProjectionHandlers()
    .on(AccountOpened, async (event, manager) => {
      await manager
        .createQueryBuilder()
        .insert()
        .into(AccountSummaryRecord)
        .values({
          id: event.data.accountId,
          ownerName: event.data.ownerName,
          currency: event.data.currency,
          balance: 0,
          status: 'open',
          version: event.version,
          openedAt: occurredAt(event),
          updatedAt: occurredAt(event),
          openedPosition: event.position,
          lastPosition: event.position,
        })
        .orIgnore()
        .execute();
    })
    .on(MoneyDeposited, (event, manager) => this.update(manager, event, { balance: event.data.balanceAfter }))
    .on(MoneyWithdrawn, (event, manager) => this.update(manager, event, { balance: event.data.balanceAfter }))
    .on(AccountClosed, (event, manager) => this.update(manager, event, { status: 'closed' }));

  private async update(
    manager: EntityManager,
    event: RecordedEvent<{ accountId: string }>,
    changes: Partial<AccountSummaryRecord>,
  ): Promise<void> {
    await manager.update(
      AccountSummaryRecord,
      { id: event.data.accountId, lastPosition: LessThan(event.position) },
      { ...changes, version: event.version, updatedAt: occurredAt(event), lastPosition: event.position },
    );
  }
}

function occurredAt(event: RecordedEvent): Date {
  return new Date(event.metadata.occurredAt);
}
