import { Injectable } from '@nestjs/common';
import { EventStore, fold } from '../event-sourcing/index.js';
import { type AccountState, accountDecider, accountStreamId } from './account.js';
import type { AccountEvent } from './account.events.js';

/**
 * The current state of an account, folded from its stream (always up to date, unlike the read
 * models). What other features may ask of an account, e.g. transfers checking that both accounts
 * exist and which currency the source holds.
 */
@Injectable()
export class AccountLookup {
  constructor(private readonly store: EventStore) {}

  async current(accountId: string): Promise<AccountState> {
    const events = await this.store.readStream(accountStreamId(accountId));
    return fold(accountDecider, events.map((event) => event.data as AccountEvent));
  }
}
