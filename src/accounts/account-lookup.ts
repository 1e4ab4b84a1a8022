import { Injectable } from '@nestjs/common';
import { AggregateLoader } from '../event-sourcing/index.js';
import { type AccountState, accountDecider, accountStreamId } from './account.js';

/**
 * The current state of an account, folded from its stream (always up to date, unlike the read
 * models). What other features may ask of an account, e.g. transfers checking that both accounts
 * exist and which currency the source holds.
 */
@Injectable()
export class AccountLookup {
  constructor(private readonly loader: AggregateLoader) {}

  async current(accountId: string): Promise<AccountState> {
    return (await this.loader.load(accountStreamId(accountId), accountDecider)).state;
  }
}
