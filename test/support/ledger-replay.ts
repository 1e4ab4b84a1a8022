import { type Queryable, rows } from './projection-fixtures.js';

/**
 * An independent fold of the accounts feature's events, straight from the `events` table, to
 * compare the read tables with. It shares no code with the projections: it works on the stored JSON,
 * recomputes balances from the amounts (and checks each stored balanceAfter on the way). It knows every
 * account event: deposits and withdrawals, the transfer legs (one transaction row each, with the
 * transfer id), and TransferSettled, which moves the account's version but no money (no row).
 */

export interface SummaryRow {
  id: string;
  ownerName: string;
  currency: string;
  balance: number;
  status: 'open' | 'closed';
  version: number;
  openedAt: string;
  updatedAt: string;
  openedPosition: number;
  lastPosition: number;
}

export interface TransactionRow {
  position: number;
  accountId: string;
  type: 'deposit' | 'withdrawal' | 'transfer-out' | 'transfer-in' | 'transfer-refund';
  amount: number;
  balanceAfter: number;
  occurredAt: string;
  transferId: string | null;
}

export interface LedgerReplay {
  readonly summaries: SummaryRow[];
  readonly transactions: TransactionRow[];
  readonly events: number;
}

const MOVEMENTS: Record<string, { type: TransactionRow['type']; sign: 1 | -1 }> = {
  'accounts.MoneyDeposited': { type: 'deposit', sign: 1 },
  'accounts.MoneyWithdrawn': { type: 'withdrawal', sign: -1 },
  'accounts.TransferDebited': { type: 'transfer-out', sign: -1 },
  'accounts.TransferCredited': { type: 'transfer-in', sign: 1 },
  'accounts.TransferRefunded': { type: 'transfer-refund', sign: 1 },
};

interface EventRow {
  position: string;
  stream_id: string;
  version: number;
  type: string;
  data: Record<string, any>;
  metadata: { occurredAt: string };
}

export async function replayLedger(query: Queryable): Promise<LedgerReplay> {
  const events = await rows<EventRow>(
    query,
    `SELECT position, stream_id, version, type, data, metadata FROM events
     WHERE type LIKE 'accounts.%' ORDER BY stream_id, version`,
  );
  const summaries = new Map<string, SummaryRow>();
  const transactions: TransactionRow[] = [];
  for (const event of events) {
    const position = Number(event.position);
    const at = new Date(event.metadata.occurredAt).toISOString();
    const accountId = event.data.accountId as string;
    if (event.stream_id !== `account-${accountId}`) throw new Error(`event ${position} of ${event.stream_id} names account ${accountId}`);
    if (event.type === 'accounts.AccountOpened') {
      if (summaries.has(accountId) || event.version !== 1) throw new Error(`account ${accountId} opened twice or late`);
      summaries.set(accountId, {
        id: accountId,
        ownerName: event.data.ownerName,
        currency: event.data.currency,
        balance: 0,
        status: 'open',
        version: 1,
        openedAt: at,
        updatedAt: at,
        openedPosition: position,
        lastPosition: position,
      });
      continue;
    }
    const account = summaries.get(accountId);
    if (!account) throw new Error(`event ${position} on account ${accountId} before it was opened`);
    if (event.version !== account.version + 1) throw new Error(`account ${accountId}: version ${event.version} after ${account.version}`);
    if (position <= account.lastPosition) throw new Error(`account ${accountId}: position ${position} after ${account.lastPosition}`);
    account.version = event.version;
    account.updatedAt = at;
    account.lastPosition = position;
    const movement = MOVEMENTS[event.type];
    if (movement) {
      const amount = Number(event.data.amount);
      account.balance += movement.sign * amount;
      if (account.balance < 0) throw new Error(`account ${accountId} below zero at ${position}`);
      if (Number(event.data.balanceAfter) !== account.balance) {
        throw new Error(`account ${accountId}: stored balanceAfter ${event.data.balanceAfter} at ${position}, folded ${account.balance}`);
      }
      transactions.push({
        position,
        accountId,
        type: movement.type,
        amount,
        balanceAfter: account.balance,
        occurredAt: at,
        transferId: (event.data.transferId as string | undefined) ?? null,
      });
      continue;
    }
    switch (event.type) {
      case 'accounts.AccountClosed':
        account.status = 'closed';
        break;
      case 'accounts.TransferSettled':
        if ('balanceAfter' in event.data) throw new Error(`account ${accountId}: a settlement at ${position} records a balance`);
        break; // the version and updatedAt moved (above); no money did
      default:
        throw new Error(`unexpected event type ${event.type}`);
    }
  }
  return {
    summaries: [...summaries.values()].sort((a, b) => a.id.localeCompare(b.id)),
    transactions: transactions.sort((a, b) => a.position - b.position),
    events: events.length,
  };
}

export async function readSummaries(query: Queryable, schema = 'public'): Promise<SummaryRow[]> {
  const found = await rows<Record<string, any>>(
    query,
    `SELECT id::text, owner_name, currency, balance, status, version, opened_at, updated_at, opened_position, last_position
     FROM "${schema}".account_summaries`,
  );
  return found
    .map((row) => ({
      id: row.id,
      ownerName: row.owner_name,
      currency: row.currency,
      balance: Number(row.balance),
      status: row.status,
      version: row.version,
      openedAt: new Date(row.opened_at).toISOString(),
      updatedAt: new Date(row.updated_at).toISOString(),
      openedPosition: Number(row.opened_position),
      lastPosition: Number(row.last_position),
    }))
    .sort((a, b) => a.id.localeCompare(b.id));
}

export async function readTransactions(query: Queryable): Promise<TransactionRow[]> {
  const found = await rows<Record<string, any>>(
    query,
    `SELECT position, account_id::text, type, amount, balance_after, occurred_at, transfer_id::text FROM account_transactions`,
  );
  return found
    .map((row) => ({
      position: Number(row.position),
      accountId: row.account_id,
      type: row.type,
      amount: Number(row.amount),
      balanceAfter: Number(row.balance_after),
      occurredAt: new Date(row.occurred_at).toISOString(),
      transferId: row.transfer_id,
    }))
    .sort((a, b) => a.position - b.position);
}
