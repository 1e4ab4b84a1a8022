import { EventType } from '../event-sourcing/domain.js';

// Facts about an account, in the past tense. The @EventType name is what is stored: never rename it.
// Amounts and balances are integers of minor units.

@EventType('accounts.AccountOpened')
export class AccountOpened {
  readonly accountId!: string;
  readonly ownerName!: string;
  readonly currency!: string;
  constructor(data: AccountOpened) {
    Object.assign(this, data);
  }
}

/** What the constructor of an event with a `reference` takes: the reference may be left out. */
type WithOptionalReference<E extends { reference: string | null }> = Omit<E, 'reference'> & { reference?: string | null };

/**
 * Schema version 2 added `reference` (the caller's description of the movement); version-1 events are
 * upcast with `reference: null` (see account.upcasters.ts).
 */
@EventType('accounts.MoneyDeposited', { schemaVersion: 2 })
export class MoneyDeposited {
  readonly accountId!: string;
  readonly amount!: number;
  /** The balance right after this deposit: lets read models and audits check themselves. */
  readonly balanceAfter!: number;
  readonly reference!: string | null;
  constructor(data: WithOptionalReference<MoneyDeposited>) {
    Object.assign(this, data);
    this.reference = data.reference ?? null;
  }
}

/** Schema version 2 added `reference`, as for MoneyDeposited. */
@EventType('accounts.MoneyWithdrawn', { schemaVersion: 2 })
export class MoneyWithdrawn {
  readonly accountId!: string;
  readonly amount!: number;
  readonly balanceAfter!: number;
  readonly reference!: string | null;
  constructor(data: WithOptionalReference<MoneyWithdrawn>) {
    Object.assign(this, data);
    this.reference = data.reference ?? null;
  }
}

@EventType('accounts.AccountClosed')
export class AccountClosed {
  readonly accountId!: string;
  constructor(data: AccountClosed) {
    Object.assign(this, data);
  }
}

/** The outgoing leg of a transfer: the transfer id on the account event makes the step idempotent. */
@EventType('accounts.TransferDebited')
export class TransferDebited {
  readonly accountId!: string;
  readonly transferId!: string;
  readonly amount!: number;
  readonly balanceAfter!: number;
  constructor(data: TransferDebited) {
    Object.assign(this, data);
  }
}

/** The incoming leg of a transfer. */
@EventType('accounts.TransferCredited')
export class TransferCredited {
  readonly accountId!: string;
  readonly transferId!: string;
  readonly amount!: number;
  readonly balanceAfter!: number;
  constructor(data: TransferCredited) {
    Object.assign(this, data);
  }
}

/** A debited transfer whose credit was refused gives the money back to its source. */
@EventType('accounts.TransferRefunded')
export class TransferRefunded {
  readonly accountId!: string;
  readonly transferId!: string;
  readonly amount!: number;
  readonly balanceAfter!: number;
  constructor(data: TransferRefunded) {
    Object.assign(this, data);
  }
}

/**
 * The transfer that debited this account reached its target: the money is no longer in flight (it
 * can no longer come back as a refund). Changes no balance.
 */
@EventType('accounts.TransferSettled')
export class TransferSettled {
  readonly accountId!: string;
  readonly transferId!: string;
  readonly amount!: number;
  constructor(data: TransferSettled) {
    Object.assign(this, data);
  }
}

/** Every event that changes a balance, with the balance after it. */
export type BalanceChange = MoneyDeposited | MoneyWithdrawn | TransferDebited | TransferCredited | TransferRefunded;

export type AccountEvent = AccountOpened | AccountClosed | TransferSettled | BalanceChange;
export const ACCOUNT_EVENTS = [
  AccountOpened,
  MoneyDeposited,
  MoneyWithdrawn,
  AccountClosed,
  TransferDebited,
  TransferCredited,
  TransferRefunded,
  TransferSettled,
];

export function isBalanceChange(event: object): event is BalanceChange {
  return (
    event instanceof MoneyDeposited ||
    event instanceof MoneyWithdrawn ||
    event instanceof TransferDebited ||
    event instanceof TransferCredited ||
    event instanceof TransferRefunded
  );
}
