import { randomUUID } from 'node:crypto';
import { AccountClosed, AccountOpened, MoneyDeposited, MoneyWithdrawn } from '../../src/accounts/account.events.js';
import { accountStreamId } from '../../src/accounts/account.js';
import { type EventStore, type EventStoreTransaction, NO_STREAM } from '../../src/event-sourcing/index.js';

/**
 * Writes valid account histories straight through the EventStore (no HTTP, no command runner), so a
 * test can shape transactions: several streams per transaction, transactions held open, and so on.
 * Each LedgerAccount is written by one writer only, so it knows its version and balance.
 */
export class LedgerAccount {
  readonly id = randomUUID();
  readonly streamId = accountStreamId(this.id);
  version = 0;
  balance = 0;
  closed = false;

  constructor(readonly ownerName: string) {}

  /** The events of opening the account and then applying each amount (positive: deposit, negative: withdrawal). */
  async write(tx: EventStoreTransaction, amounts: readonly number[], open = this.version === 0): Promise<number[]> {
    const events: object[] = [];
    if (open) events.push(new AccountOpened({ accountId: this.id, ownerName: this.ownerName, currency: 'EUR' }));
    let balance = this.balance;
    for (const amount of amounts) {
      balance += amount;
      if (balance < 0) throw new Error('a test writer tried to overdraw');
      events.push(
        amount >= 0
          ? new MoneyDeposited({ accountId: this.id, amount, balanceAfter: balance })
          : new MoneyWithdrawn({ accountId: this.id, amount: -amount, balanceAfter: balance }),
      );
    }
    const result = await tx.append(this.streamId, events, { expectedVersion: this.version === 0 ? NO_STREAM : this.version });
    // Only a committed transaction makes this true; writers of this helper commit or fail the test.
    this.version = result.version;
    this.balance = balance;
    return result.events.map((event) => event.position);
  }

  async close(tx: EventStoreTransaction): Promise<number> {
    const result = await tx.append(this.streamId, [new AccountClosed({ accountId: this.id })], { expectedVersion: this.version });
    this.version = result.version;
    this.closed = true;
    return result.position;
  }
}

/** Opens `accounts` accounts with `movements` deposits/withdrawals each, `perTransaction` accounts per transaction. */
export async function seedLedger(
  store: EventStore,
  options: { accounts: number; movements: number; perTransaction?: number; owner?: string },
): Promise<LedgerAccount[]> {
  const accounts = Array.from({ length: options.accounts }, (_, index) => new LedgerAccount(`${options.owner ?? 'Seed'} ${index}`));
  const perTransaction = options.perTransaction ?? 10;
  for (let first = 0; first < accounts.length; first += perTransaction) {
    await store.transaction(async (tx) => {
      for (const account of accounts.slice(first, first + perTransaction)) {
        const amounts = Array.from({ length: options.movements }, (_, index) => (index % 3 === 2 ? -50 : 100 + index));
        await account.write(tx, amounts);
      }
    });
  }
  return accounts;
}
