import { Injectable } from '@nestjs/common';
import { AggregateLoader } from '../event-sourcing/index.js';
import { RecentMap } from '../shared/recent-map.js';
import { accountDecider, accountStreamId } from './account.js';

/** What never changes about an account once it was opened: that it exists, and its currency. */
export interface OpenedAccount {
  readonly accountId: string;
  readonly currency: string;
}

/** How many opened accounts a process remembers (about 1 MB at most). */
const KNOWN_ACCOUNTS = 10_000;

/**
 * What other features may ask of an account, e.g. transfers checking that both accounts exist and
 * which currency the source holds: facts folded from its stream (always up to date, unlike the read
 * models).
 *
 * Only facts that cannot change once true are answered, so they are remembered (a bounded memory,
 * like the transfer process's finished transfers): an account's stream is append-only, nothing after
 * AccountOpened removes the account or changes its currency. A request for an account this process
 * has looked up before reads nothing (two round trips per account, four per transfer request, before).
 * An account not found is never remembered: it may be opened a moment later, by any instance. Whether
 * it is open, and its balance, do change: the transfer process decides them on the stored stream.
 * The memory is per process: after restoring the database to an earlier point in time, restart the
 * instances (a remembered account the restore removed would be accepted with 202, then fail in the
 * transfer process with ACCOUNT_NOT_FOUND, where a fresh read answers 404; no money moves either way).
 */
@Injectable()
export class AccountLookup {
  private readonly known = new RecentMap<string, OpenedAccount>(KNOWN_ACCOUNTS);

  constructor(private readonly loader: AggregateLoader) {}

  /** The account's unchanging facts, or undefined when no such account was opened. */
  async opened(accountId: string): Promise<OpenedAccount | undefined> {
    const remembered = this.known.get(accountId);
    if (remembered) return remembered;
    const { state } = await this.loader.load(accountStreamId(accountId), accountDecider);
    if (state.status === 'none') return undefined;
    const opened = { accountId, currency: state.currency };
    this.known.set(accountId, opened);
    return opened;
  }
}
