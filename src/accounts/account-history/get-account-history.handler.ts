import { type IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { EventLogReader } from '../../event-sourcing/index.js';
import { AccountNotFoundError } from '../account.errors.js';
import { accountStreamId } from '../account.js';
import { type AccountEventPage, GetAccountHistory } from './get-account-history.query.js';

/** The largest version a stream can have (events.version is an int). */
export const MAX_STREAM_VERSION = 2_147_483_647;

@QueryHandler(GetAccountHistory)
export class GetAccountHistoryHandler implements IQueryHandler<GetAccountHistory> {
  constructor(private readonly store: EventLogReader) {}

  async execute({ accountId, limit, afterVersion }: GetAccountHistory): Promise<AccountEventPage> {
    const streamId = accountStreamId(accountId);
    // A stream's versions are dense (each append takes the next ones, UNIQUE(stream_id, version), and
    // events are never deleted), so the page after version v is the range v+1 … v+limit, read through
    // the (stream_id, version) index; one more row says whether another page follows.
    const rows = await this.store.readStream(streamId, {
      fromVersion: afterVersion + 1,
      toVersion: Math.min(afterVersion + limit + 1, MAX_STREAM_VERSION),
    });
    // Nothing: the end of the stream, or no account at all (a cursor can be sent for any id).
    if (rows.length === 0 && (afterVersion === 0 || (await this.store.streamVersion(streamId)) === 0)) {
      throw new AccountNotFoundError(accountId);
    }
    const items = rows.slice(0, limit);
    return { items, nextAfterVersion: rows.length > limit ? items[items.length - 1].version : null };
  }
}
