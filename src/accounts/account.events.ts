import { EventType } from '../event-sourcing/index.js';

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

@EventType('accounts.MoneyDeposited')
export class MoneyDeposited {
  readonly accountId!: string;
  readonly amount!: number;
  /** The balance right after this deposit: lets read models and audits check themselves. */
  readonly balanceAfter!: number;
  constructor(data: MoneyDeposited) {
    Object.assign(this, data);
  }
}

@EventType('accounts.MoneyWithdrawn')
export class MoneyWithdrawn {
  readonly accountId!: string;
  readonly amount!: number;
  readonly balanceAfter!: number;
  constructor(data: MoneyWithdrawn) {
    Object.assign(this, data);
  }
}

@EventType('accounts.AccountClosed')
export class AccountClosed {
  readonly accountId!: string;
  constructor(data: AccountClosed) {
    Object.assign(this, data);
  }
}

export type AccountEvent = AccountOpened | MoneyDeposited | MoneyWithdrawn | AccountClosed;
export const ACCOUNT_EVENTS = [AccountOpened, MoneyDeposited, MoneyWithdrawn, AccountClosed];
