import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { type PreparedStatement, type Projection, type RecordedEvent, prepared } from '../../event-sourcing/index.js';
import { ACCOUNT_EVENTS, AccountClosed, type AccountEvent, AccountOpened, isBalanceChange } from '../account.events.js';

const ACCOUNT_EVENT_CLASSES = new Set<Function>(ACCOUNT_EVENTS);
const isAccountEvent = (data: object): data is AccountEvent => ACCOUNT_EVENT_CLASSES.has(data.constructor);

interface Change {
  balance: number | null;
  /** Version of the event `balance` comes from. */
  balanceVersion: number;
  closed: boolean;
  version: number;
  updatedAt: string;
  lastPosition: number;
}

/** Prepared (sql.ts): planning these ran longer than executing them, on every batch (docs/BENCHMARKS.md). */
const INSERT_OPENED_SQL: PreparedStatement = {
  name: 'ledger_account_summaries_open_v1',
  text: `INSERT INTO account_summaries
           (id, owner_name, currency, balance, status, version, opened_at, updated_at, opened_position, last_position)
         SELECT id, owner_name, currency, 0, 'open', version, occurred_at, occurred_at, position, position
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::timestamptz[], $6::bigint[])
           AS opened(id, owner_name, currency, version, occurred_at, position)
         ON CONFLICT (id) DO NOTHING`,
};

const UPDATE_CHANGED_SQL: PreparedStatement = {
  name: 'ledger_account_summaries_change_v1',
  text: `UPDATE account_summaries AS account
         SET balance = coalesce(change.balance, account.balance),
             status = CASE WHEN change.closed THEN 'closed' ELSE account.status END,
             version = change.version, updated_at = change.updated_at, last_position = change.last_position
         FROM unnest($1::uuid[], $2::bigint[], $3::boolean[], $4::int[], $5::timestamptz[], $6::bigint[])
           AS change(id, balance, closed, version, updated_at, last_position)
         WHERE account.id = change.id AND account.version < change.version`,
};

/**
 * Keeps `account_summaries`, asynchronously: the projection engine applies committed events in
 * commit order, a batch at a time, with its checkpoint in the same transaction. Queries that must see
 * a write pass its position as minPosition.
 *
 * Set-based: a batch becomes two statements (insert the opened accounts, then update each touched
 * account to the state after its highest version in the batch), not one statement per event. Every
 * field an event sets is absolute (balanceAfter, closed, version), so "state after the highest
 * version" equals applying them one by one, and the version guard makes a replayed event a no-op.
 * Versions, not log positions, decide: the store lists each stream in version order, and a
 * per-stream value guarded by the stream's own version stays right even for a reader that is not.
 */
@Injectable()
export class AccountSummaryProjection implements Projection {
  readonly name = 'account-summary';
  readonly mode = 'async';
  readonly tables = ['account_summaries'];
  readonly handles = ACCOUNT_EVENTS;

  async applyBatch(events: readonly RecordedEvent[], manager: EntityManager): Promise<void> {
    const opened: Array<RecordedEvent<AccountOpened>> = [];
    const changes = new Map<string, Change>();
    for (const event of events) {
      const data = event.data;
      if (data instanceof AccountOpened) {
        opened.push(event as RecordedEvent<AccountOpened>);
        continue;
      }
      if (!isAccountEvent(data)) continue;
      // Every later account event moves the version (and the ETag), even one that changes no balance.
      const change = changes.get(data.accountId) ?? {
        balance: null,
        balanceVersion: 0,
        closed: false,
        version: 0,
        updatedAt: '',
        lastPosition: 0,
      };
      if (data instanceof AccountClosed) change.closed = true;
      else if (isBalanceChange(data) && event.version > change.balanceVersion) {
        change.balance = data.balanceAfter;
        change.balanceVersion = event.version;
      }
      if (event.version > change.version) {
        change.version = event.version;
        change.updatedAt = event.metadata.occurredAt;
        change.lastPosition = event.position;
      }
      changes.set(data.accountId, change);
    }
    if (opened.length) {
      await prepared(manager, INSERT_OPENED_SQL, [
        opened.map((event) => event.data.accountId),
        opened.map((event) => event.data.ownerName),
        opened.map((event) => event.data.currency),
        opened.map((event) => event.version),
        opened.map((event) => event.metadata.occurredAt),
        opened.map((event) => event.position),
      ]);
    }
    if (changes.size) {
      const ids = [...changes.keys()];
      const rows = [...changes.values()];
      await prepared(manager, UPDATE_CHANGED_SQL, [
        ids,
        rows.map((row) => row.balance),
        rows.map((row) => row.closed),
        rows.map((row) => row.version),
        rows.map((row) => row.updatedAt),
        rows.map((row) => row.lastPosition),
      ]);
    }
  }
}
