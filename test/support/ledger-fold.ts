/**
 * An independent fold of the whole ledger — accounts and transfers — straight from the stored JSON of
 * the `events` table, to compare the read tables and the balances with. It shares no code with the
 * application: types are matched by their stored names, balances are recomputed from the amounts, and
 * every rule the log must obey is checked on the way and reported as a violation (not thrown), so a
 * test can show all of them at once.
 *
 * Money a transfer debited is "in flight" until the source's TransferSettled (the target was
 * credited) or TransferRefunded (the credit was refused) — one of the two, once. The fold tracks it
 * per account: an account is never closed with money in flight, and its balance plus its money in
 * flight never passes 2^53 - 1 (so every refund fits).
 */

/** The largest amount or balance: 2^53 - 1 minor units. */
const MAX_MINOR_UNITS = 9_007_199_254_740_991;

/** Anything with a `query(sql, params)` returning rows: a pg Client or Pool, a TypeORM DataSource. */
export interface Queryable {
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

export async function rowsOf<T>(db: Queryable, sql: string, params: unknown[] = []): Promise<T[]> {
  const result = (await db.query(sql, params)) as T[] | { rows: T[] };
  return Array.isArray(result) ? result : result.rows;
}

export interface AccountRow {
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

export type MovementType = 'deposit' | 'withdrawal' | 'transfer-out' | 'transfer-in' | 'transfer-refund';

export interface MovementRow {
  position: number;
  accountId: string;
  type: MovementType;
  amount: number;
  balanceAfter: number;
  occurredAt: string;
  transferId: string | null;
  /** The reference a deposit or withdrawal carried, if the log and the table know of one (null otherwise). */
  reference: string | null;
}

export interface TransferRow {
  id: string;
  fromAccountId: string;
  toAccountId: string;
  amount: number;
  currency: string;
  reference: string | null;
  status: 'pending' | 'completed' | 'failed';
  failureCode: string | null;
  failureReason: string | null;
  refunded: boolean;
  requestedAt: string;
  updatedAt: string;
  completedAt: string | null;
  requestedPosition: number;
  lastPosition: number;
}

export interface StoredEvent {
  position: number;
  streamId: string;
  version: number;
  type: string;
  data: Record<string, any>;
  metadata: Record<string, any>;
}

/** An account's TransferSettled: the transfer that debited it reached its target (no balance change). */
export interface SettlementRow {
  position: number;
  accountId: string;
  transferId: string;
  amount: number;
}

export interface LedgerFold {
  readonly events: StoredEvent[];
  readonly accounts: Map<string, AccountRow>;
  readonly movements: MovementRow[];
  readonly settlements: SettlementRow[];
  /** Per account: the money debited by transfers neither settled nor refunded (0 once all are). */
  readonly inFlight: Map<string, number>;
  readonly transfers: Map<string, TransferRow>;
  /** Transfer stream id → its event types, in version order. */
  readonly transferPaths: Map<string, string[]>;
  /** Every broken rule found while folding; empty for a sound log. */
  readonly violations: string[];
}

const MOVEMENTS: Record<string, { type: MovementType; sign: 1 | -1 }> = {
  'accounts.MoneyDeposited': { type: 'deposit', sign: 1 },
  'accounts.MoneyWithdrawn': { type: 'withdrawal', sign: -1 },
  'accounts.TransferDebited': { type: 'transfer-out', sign: -1 },
  'accounts.TransferCredited': { type: 'transfer-in', sign: 1 },
  'accounts.TransferRefunded': { type: 'transfer-refund', sign: 1 },
};

/** The three paths a transfer's stream may take. */
export const TRANSFER_PATHS = [
  ['transfers.TransferRequested', 'transfers.SourceDebited', 'transfers.TargetCredited', 'transfers.TransferCompleted'],
  ['transfers.TransferRequested', 'transfers.TransferFailed'],
  [
    'transfers.TransferRequested',
    'transfers.SourceDebited',
    'transfers.CreditRefused',
    'transfers.SourceRefunded',
    'transfers.TransferFailed',
  ],
];

const iso = (value: string | Date) => new Date(value).toISOString();

export async function readEvents(db: Queryable): Promise<StoredEvent[]> {
  const rows = await rowsOf<{ position: string; stream_id: string; version: number; type: string; data: any; metadata: any }>(
    db,
    'SELECT position, stream_id, version, type, data, metadata FROM events ORDER BY position',
  );
  return rows.map((row) => ({
    position: Number(row.position),
    streamId: row.stream_id,
    version: row.version,
    type: row.type,
    data: row.data,
    metadata: row.metadata,
  }));
}

export async function foldLedger(db: Queryable): Promise<LedgerFold> {
  const events = await readEvents(db);
  const violations: string[] = [];
  const accounts = new Map<string, AccountRow>();
  const movements: MovementRow[] = [];
  const settlements: SettlementRow[] = [];
  const transfers = new Map<string, TransferRow>();
  const transferPaths = new Map<string, string[]>();
  /** Transfer id → position of each of its transfer events, by type. */
  const transferEventAt = new Map<string, Map<string, number>>();
  const versions = new Map<string, number>();
  /** Per account: the transfer legs it applied, as "<type>:<transferId>". */
  const legs = new Map<string, Set<string>>();
  /** Per account: transfer id → amount of each debit neither settled nor refunded yet. */
  const unresolved = new Map<string, Map<string, number>>();
  const inFlightOf = (accountId: string) => [...(unresolved.get(accountId)?.values() ?? [])].reduce((sum, amount) => sum + amount, 0);

  // Per stream, in version order (positions increase along a stream, so log order is stream order).
  for (const event of events) {
    const at = iso(event.metadata.occurredAt);
    const expectedVersion = (versions.get(event.streamId) ?? 0) + 1;
    if (event.version !== expectedVersion) violations.push(`${event.streamId}: version ${event.version} where ${expectedVersion} was due`);
    versions.set(event.streamId, event.version);

    if (event.type.startsWith('accounts.')) {
      const accountId = event.data.accountId as string;
      if (event.streamId !== `account-${accountId}`)
        violations.push(`event ${event.position} of ${event.streamId} names account ${accountId}`);
      if (event.type === 'accounts.AccountOpened') {
        accounts.set(accountId, {
          id: accountId,
          ownerName: event.data.ownerName,
          currency: event.data.currency,
          balance: 0,
          status: 'open',
          version: event.version,
          openedAt: at,
          updatedAt: at,
          openedPosition: event.position,
          lastPosition: event.position,
        });
        legs.set(accountId, new Set());
        unresolved.set(accountId, new Map());
        continue;
      }
      const account = accounts.get(accountId);
      if (!account) {
        violations.push(`event ${event.position} on account ${accountId} before it was opened`);
        continue;
      }
      account.version = event.version;
      account.updatedAt = at;
      account.lastPosition = event.position;
      if (event.type === 'accounts.AccountClosed') {
        if (account.status === 'closed') violations.push(`account ${accountId} closed twice`);
        if (account.balance !== 0) violations.push(`account ${accountId} closed at balance ${account.balance}`);
        if (inFlightOf(accountId) !== 0) violations.push(`account ${accountId} closed with ${inFlightOf(accountId)} in flight`);
        account.status = 'closed';
        continue;
      }
      if (event.type === 'accounts.TransferSettled') {
        const transferId = event.data.transferId as string;
        const amount = event.data.amount as number;
        if (!Number.isSafeInteger(amount) || amount <= 0) violations.push(`event ${event.position}: amount ${amount}`);
        if ('balanceAfter' in event.data) violations.push(`event ${event.position} (${event.type}) records a balance: it moves none`);
        if (account.status === 'closed') violations.push(`event ${event.position} (${event.type}) on closed account ${accountId}`);
        const leg = `settle:${transferId}`;
        if (legs.get(accountId)!.has(leg)) violations.push(`account ${accountId}: ${leg} applied twice`);
        legs.get(accountId)!.add(leg);
        const debit = unresolved.get(accountId)!.get(transferId);
        if (!legs.get(accountId)!.has(`transfer-out:${transferId}`))
          violations.push(`account ${accountId}: transfer ${transferId} settled without a debit`);
        else if (debit === undefined) violations.push(`account ${accountId}: transfer ${transferId} settled once resolved already`);
        else if (debit !== amount) violations.push(`account ${accountId}: transfer ${transferId} settled for ${amount}, debited ${debit}`);
        unresolved.get(accountId)!.delete(transferId);
        settlements.push({ position: event.position, accountId, transferId, amount });
        continue;
      }
      const movement = MOVEMENTS[event.type];
      if (!movement) {
        violations.push(`unknown account event type ${event.type} at ${event.position}`);
        continue;
      }
      const amount = event.data.amount as number;
      const balanceAfter = event.data.balanceAfter as number;
      if (!Number.isSafeInteger(amount) || amount <= 0) violations.push(`event ${event.position}: amount ${amount}`);
      const expected = account.balance + movement.sign * amount;
      if (balanceAfter !== expected)
        violations.push(`event ${event.position} (${event.type}): balanceAfter ${balanceAfter}, expected ${expected}`);
      if (balanceAfter < 0) violations.push(`event ${event.position} (${event.type}): negative balance ${balanceAfter}`);
      // Not even a refund: an account is never closed while money it sent may come back.
      if (account.status === 'closed') violations.push(`event ${event.position} (${event.type}) on closed account ${accountId}`);
      const transferId = (event.data.transferId as string | undefined) ?? null;
      if (transferId) {
        const leg = `${movement.type}:${transferId}`;
        if (legs.get(accountId)!.has(leg)) violations.push(`account ${accountId}: ${leg} applied twice`);
        legs.get(accountId)!.add(leg);
        const pending = unresolved.get(accountId)!;
        if (movement.type === 'transfer-out') pending.set(transferId, amount);
        if (movement.type === 'transfer-refund') {
          if (legs.get(accountId)!.has(`settle:${transferId}`))
            violations.push(`account ${accountId}: transfer ${transferId} refunded once settled`);
          else if (pending.has(transferId) && pending.get(transferId) !== amount) {
            violations.push(`account ${accountId}: transfer ${transferId} refunded ${amount}, debited ${pending.get(transferId)}`);
          }
          pending.delete(transferId);
        }
      }
      account.balance = balanceAfter;
      if (balanceAfter + inFlightOf(accountId) > MAX_MINOR_UNITS) {
        violations.push(
          `event ${event.position} (${event.type}): balance ${balanceAfter} + ${inFlightOf(accountId)} in flight past 2^53 - 1`,
        );
      }
      const reference = (event.data.reference as string | null | undefined) ?? null;
      movements.push({
        position: event.position,
        accountId,
        type: movement.type,
        amount,
        balanceAfter,
        occurredAt: at,
        transferId,
        reference,
      });
      continue;
    }

    if (event.type.startsWith('transfers.')) {
      const transferId = event.data.transferId as string;
      if (event.streamId !== `transfer-${transferId}`)
        violations.push(`event ${event.position} of ${event.streamId} names transfer ${transferId}`);
      const path = transferPaths.get(transferId) ?? [];
      path.push(event.type);
      transferPaths.set(transferId, path);
      const typeAt = transferEventAt.get(transferId) ?? new Map<string, number>();
      typeAt.set(event.type, event.position);
      transferEventAt.set(transferId, typeAt);
      if (!TRANSFER_PATHS.some((allowed) => path.every((type, index) => allowed[index] === type))) {
        violations.push(`transfer ${transferId}: ${path.join(' → ')} is not an allowed path`);
      }
      if (event.type === 'transfers.TransferRequested') {
        transfers.set(transferId, {
          id: transferId,
          fromAccountId: event.data.fromAccountId,
          toAccountId: event.data.toAccountId,
          amount: event.data.amount,
          currency: event.data.currency,
          reference: event.data.reference,
          status: 'pending',
          failureCode: null,
          failureReason: null,
          refunded: false,
          requestedAt: at,
          updatedAt: at,
          completedAt: null,
          requestedPosition: event.position,
          lastPosition: event.position,
        });
        continue;
      }
      const transfer = transfers.get(transferId);
      if (!transfer) continue; // reported as a path violation above
      if (event.type === 'transfers.TransferCompleted' || event.type === 'transfers.TransferFailed') {
        transfer.status = event.type === 'transfers.TransferCompleted' ? 'completed' : 'failed';
        transfer.failureCode = event.data.code ?? null;
        transfer.failureReason = event.data.reason ?? null;
        transfer.refunded = event.data.refunded ?? false;
        transfer.updatedAt = at;
        transfer.completedAt = at;
        transfer.lastPosition = event.position;
      }
      continue;
    }
    // events of other modules (none yet) are not the ledger's business
  }

  // Each transfer's account legs must match its own stream: money moved exactly as the stream says.
  for (const transfer of transfers.values()) {
    const path = transferPaths.get(transfer.id)!;
    const legsOf = (type: MovementType) => movements.filter((movement) => movement.transferId === transfer.id && movement.type === type);
    const out = legsOf('transfer-out');
    const incoming = legsOf('transfer-in');
    const refund = legsOf('transfer-refund');
    const debited = path.includes('transfers.SourceDebited');
    const credited = path.includes('transfers.TargetCredited');
    const refunded = path.includes('transfers.SourceRefunded');
    const check = (what: string, found: MovementRow[], accountId: string, due: boolean, dueAtMost = due) => {
      const here = found.filter((movement) => movement.accountId === accountId);
      if (here.length !== found.length) violations.push(`transfer ${transfer.id}: ${what} on another account`);
      if (found.length > 1) violations.push(`transfer ${transfer.id}: ${found.length} ${what} legs`);
      if (due && found.length === 0) violations.push(`transfer ${transfer.id}: its stream says ${what}, no account leg does`);
      if (!dueAtMost && found.length > 0) violations.push(`transfer ${transfer.id}: a ${what} leg its stream does not record`);
      for (const movement of found) {
        if (movement.amount !== transfer.amount)
          violations.push(`transfer ${transfer.id}: ${what} of ${movement.amount}, not ${transfer.amount}`);
      }
    };
    // A leg may be ahead of its stream while the transfer is pending (the process records it next).
    const ended = transfer.status !== 'pending';
    check('transfer-out', out, transfer.fromAccountId, debited, ended ? debited : true);
    check('transfer-in', incoming, transfer.toAccountId, credited, ended ? credited : true);
    check('transfer-refund', refund, transfer.fromAccountId, refunded, ended ? refunded : true);
    // The source is settled exactly once for a completed transfer (once the target was credited, before
    // the transfer was recorded completed), never for a failed one (refunded or never debited).
    const settlementsOf = settlements.filter((settlement) => settlement.transferId === transfer.id);
    const completed = transfer.status === 'completed';
    const due = completed ? 1 : transfer.status === 'failed' ? 0 : undefined; // pending: ahead of its stream, at most 1
    if (due !== undefined && settlementsOf.length !== due)
      violations.push(`transfer ${transfer.id} (${transfer.status}): ${settlementsOf.length} settlements`);
    if (settlementsOf.length > 1) violations.push(`transfer ${transfer.id}: settled ${settlementsOf.length} times`);
    for (const settlement of settlementsOf) {
      if (settlement.accountId !== transfer.fromAccountId)
        violations.push(`transfer ${transfer.id}: settled on ${settlement.accountId}, not on its source`);
      if (settlement.amount !== transfer.amount)
        violations.push(`transfer ${transfer.id}: settled for ${settlement.amount}, not ${transfer.amount}`);
      if (!incoming.some((leg) => leg.position < settlement.position))
        violations.push(`transfer ${transfer.id}: settled before its target was credited`);
      const completedAt = transferEventAt.get(transfer.id)?.get('transfers.TransferCompleted');
      if (completedAt !== undefined && completedAt < settlement.position)
        violations.push(`transfer ${transfer.id}: recorded completed before its source was settled`);
    }
  }
  for (const movement of movements) {
    if (movement.transferId && !transfers.has(movement.transferId))
      violations.push(`leg at ${movement.position} of an unknown transfer ${movement.transferId}`);
  }
  for (const settlement of settlements) {
    if (!transfers.has(settlement.transferId))
      violations.push(`settlement at ${settlement.position} of an unknown transfer ${settlement.transferId}`);
  }
  const inFlight = new Map([...accounts.keys()].map((accountId) => [accountId, inFlightOf(accountId)]));
  return { events, accounts, movements, settlements, inFlight, transfers, transferPaths, violations };
}

/** The read tables, in the same shapes as the fold, ordered by key. */
export async function readTables(db: Queryable): Promise<{ accounts: AccountRow[]; movements: MovementRow[]; transfers: TransferRow[] }> {
  const accounts = await rowsOf<any>(db, 'SELECT * FROM account_summaries ORDER BY id');
  const movements = await rowsOf<any>(db, 'SELECT * FROM account_transactions ORDER BY position');
  const transfers = await rowsOf<any>(db, 'SELECT * FROM transfers ORDER BY id');
  return {
    accounts: accounts.map((row) => ({
      id: row.id,
      ownerName: row.owner_name,
      currency: row.currency,
      balance: Number(row.balance),
      status: row.status,
      version: row.version,
      openedAt: iso(row.opened_at),
      updatedAt: iso(row.updated_at),
      openedPosition: Number(row.opened_position),
      lastPosition: Number(row.last_position),
    })),
    movements: movements.map((row) => ({
      position: Number(row.position),
      accountId: row.account_id,
      type: row.type,
      amount: Number(row.amount),
      balanceAfter: Number(row.balance_after),
      occurredAt: iso(row.occurred_at),
      transferId: row.transfer_id,
      reference: row.reference ?? null,
    })),
    transfers: transfers.map((row) => ({
      id: row.id,
      fromAccountId: row.from_account_id,
      toAccountId: row.to_account_id,
      amount: Number(row.amount),
      currency: row.currency,
      reference: row.reference,
      status: row.status,
      failureCode: row.failure_code,
      failureReason: row.failure_reason,
      refunded: row.refunded,
      requestedAt: iso(row.requested_at),
      updatedAt: iso(row.updated_at),
      completedAt: row.completed_at === null ? null : iso(row.completed_at),
      requestedPosition: Number(row.requested_position),
      lastPosition: Number(row.last_position),
    })),
  };
}

/** The fold in the shapes of readTables, for a direct comparison. */
export function foldAsTables(fold: LedgerFold): { accounts: AccountRow[]; movements: MovementRow[]; transfers: TransferRow[] } {
  const byId = <T extends { id: string }>(a: T, b: T) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  return {
    accounts: [...fold.accounts.values()].sort(byId),
    movements: [...fold.movements].sort((a, b) => a.position - b.position),
    transfers: [...fold.transfers.values()].sort(byId),
  };
}

/**
 * Waits until every transfer in the log is completed or failed and every projection has applied
 * the whole log (and is not stopped on a failure). Throws, with what is still outstanding, after
 * `timeoutMs` — a guard against hanging, not a performance threshold.
 */
export async function waitUntilSettled(db: Queryable, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [pending] = await rowsOf<{ count: number }>(
      db,
      `SELECT count(*)::int AS count FROM (
         SELECT stream_id FROM events WHERE stream_id LIKE 'transfer-%' GROUP BY stream_id
         HAVING NOT bool_or(type IN ('transfers.TransferCompleted', 'transfers.TransferFailed'))) open_transfers`,
    );
    const behind = await rowsOf<{ name: string; status: string; behind: boolean }>(
      db,
      `SELECT c.name, c.status,
              EXISTS (SELECT 1 FROM events e WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)) AS behind
       FROM projection_checkpoints c ORDER BY c.name`,
    );
    const failed = behind.filter((row) => row.status !== 'running');
    if (failed.length) throw new Error(`projections stopped: ${JSON.stringify(failed)}`);
    if (pending.count === 0 && behind.every((row) => !row.behind)) return;
    if (Date.now() > deadline) {
      throw new Error(`not settled after ${timeoutMs} ms: ${pending.count} transfers pending, projections ${JSON.stringify(behind)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
