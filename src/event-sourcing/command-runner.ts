import { Inject, Injectable, Logger } from '@nestjs/common';
import { AggregateCache } from './aggregate-cache.js';
import { AggregateLoader, type LoadedAggregate } from './aggregate-loader.js';
import { type CommandMetadata, correlationTag } from './command-metadata.js';
import type { Decider } from './decider.js';
import { COMMAND_RUNNER_OPTIONS, type CommandRunnerOptions, DEFAULT_AGGREGATE_CACHE_SIZE } from './command-runner-options.js';
import { conflictBackoff } from './conflict-backoff.js';
import { ConcurrencyConflictError, UnitOfWorkConflict, WrongExpectedVersionError } from './errors.js';
import { type AppendResult, EventStore, ambientManager } from './event-store.js';
import { ambient } from './event-store-transaction.js';
import { NO_STREAM } from './expected-version.js';
import { inSpan } from '../observability/spans.js';

export { COMMAND_RUNNER_OPTIONS, type CommandRunnerOptions } from './command-runner-options.js';

export interface RunCommand<State, Event extends object> {
  readonly streamId: string;
  readonly decider: Decider<State, Event>;
  /** Pure: returns the new events or throws a domain error. Called again on every retry. */
  readonly decide: (state: State) => Event[];
  /**
   * The stream version the caller based its request on (HTTP If-Match). When given, a mismatch is
   * the caller's to resolve: WrongExpectedVersionError is thrown and nothing is retried. A stream
   * that does not exist yet is left to `decide`, which knows whether that is an error.
   */
  readonly expectedVersion?: number;
  /** The command's correlation, causation and actor: handed to EventStore.append for every event. */
  readonly metadata?: CommandMetadata;
  /**
   * The stream is new: its id was made for this command (a random UUID). The first attempt decides
   * on the decider's initial state without reading the stream, one round trip fewer; the append
   * expects NO_STREAM, so a stream that exists after all refuses it, and the command goes on as after
   * any lost race, reading the stream and deciding again. Ignored with an `expectedVersion`.
   */
  readonly newStream?: boolean;
}

/**
 * Load → fold → decide → append with the loaded version as expected version. Without a caller's
 * expected version, losing a race to a concurrent writer means the decision was made on stale state:
 * it is reloaded and decided again after a jittered pause, up to maxAttempts, then
 * ConcurrencyConflictError. Lone commands of this process take turns per stream (StreamLanes), so
 * the race they can lose is only to another process or to a unit of work.
 *
 * Inside a unit of work (an idempotent request's transaction, a transfer step) a lost race is not
 * decided again there: the transaction may already have its id, and appending again from it could
 * list the stream out of version order in the log. It throws UnitOfWorkConflict, and the unit of
 * work starts over on a new transaction (EventStore.transaction). A unit of work decides from a copy
 * of the cached state too (when the decider can copy it: Decider.copy), which saves reading the
 * stream in the transaction; when that state turns out stale (the append found a newer version and
 * inserted nothing), it reads the stream in the transaction and decides again, once.
 */
@Injectable()
export class CommandRunner {
  private readonly logger = new Logger(CommandRunner.name);

  /** The state this process last appended per stream (see AggregateCache: a hint the append checks). */
  private readonly cache: AggregateCache;

  constructor(
    private readonly store: EventStore,
    private readonly loader: AggregateLoader,
    @Inject(COMMAND_RUNNER_OPTIONS) private readonly options: CommandRunnerOptions,
  ) {
    this.cache = new AggregateCache(options.aggregateCacheSize ?? DEFAULT_AGGREGATE_CACHE_SIZE);
  }

  /** Tracing, in a span named after the stream's kind (`command account`), with the events it appended. */
  run<State, Event extends object>(command: RunCommand<State, Event>): Promise<AppendResult> {
    const kind = command.streamId.slice(0, Math.max(0, command.streamId.indexOf('-'))) || command.streamId;
    return inSpan(`command ${kind}`, { attributes: { 'ledger.stream.id': command.streamId } }, async (span) => {
      // Inside a unit of work the stream is read and written in its transaction, which a lane could
      // not cover: the lane would be left before COMMIT, and held across several streams it could
      // deadlock two units of work in this process. Units of work retry as a whole instead.
      const result =
        ambientManager() === undefined
          ? await this.store.inLane(command.streamId, () => this.runUntraced(command))
          : await this.runUntraced(command);
      span?.setAttributes({ 'ledger.stream.version': result.version, 'ledger.events': result.events.map((event) => event.type) });
      return result;
    });
  }

  private async runUntraced<State, Event extends object>(command: RunCommand<State, Event>): Promise<AppendResult> {
    /** Set once a unit of work's decision on the cache met a stream that had moved on: read it from then on. */
    let readInTransaction = false;
    for (let attempt = 1; ; attempt++) {
      const inUnitOfWork = ambientManager() !== undefined;
      const cached = readInTransaction ? undefined : (this.cached(command, inUnitOfWork) ?? this.assumedNew(command, attempt));
      let loaded = cached ?? (await this.loader.load(command.streamId, command.decider));
      let outcome = this.decide(command, loaded);
      if (cached && !('events' in outcome && outcome.events.length > 0)) {
        // A refusal, a version mismatch or nothing to do, decided on the cached state: the stream may
        // have moved on in another instance, so it is decided again on the stream as stored. Only an
        // append trusts the cache, because the database checks its expected version. The entry stays
        // if the stream had not moved on (found in review: a refused idempotent request dropped the
        // entry its account's lone commands decide from); it is never set from this read, which in a
        // unit of work also sees the transaction's own appends, not committed yet.
        loaded = await this.loader.load(command.streamId, command.decider);
        if (loaded.version !== cached.version) this.cache.delete(command.streamId);
        outcome = this.decide(command, loaded);
      }
      if ('error' in outcome) throw outcome.error;
      const { events } = outcome;
      const { version } = loaded;
      if (events.length === 0) {
        // Nothing to do (e.g. an idempotent step already taken): success at the current version.
        return { streamId: command.streamId, version, position: loaded.position, events: [] };
      }
      let appended: AppendResult;
      try {
        appended = await this.store.append(command.streamId, events, {
          expectedVersion: version === 0 ? NO_STREAM : version,
          metadata: command.metadata,
        });
      } catch (error) {
        this.cache.delete(command.streamId);
        if (!(error instanceof WrongExpectedVersionError) || command.expectedVersion !== undefined) throw error;
        if (ambientManager()) {
          if (cached && !readInTransaction) {
            // Decided on the cache, and the stream had moved on (another instance or another unit of
            // work of this process wrote it): the append found a newer version and inserted nothing
            // (in a nested unit of work, a version taken meanwhile was rolled back to its savepoint),
            // so decide again on the stream as this transaction reads it. Should the new head have been
            // written by a younger transaction than this one, the insert trigger refuses the append
            // (LE001) and the whole unit of work starts over, as for any lost race.
            readInTransaction = true;
            continue;
          }
          throw new UnitOfWorkConflict(command.streamId, 'a concurrent writer took its next version');
        }
        this.logger.debug(
          `${correlationTag(command.metadata)} ${command.streamId}@${version}: lost a race (attempt ${attempt}), deciding again`,
        );
        if (attempt >= this.options.maxAttempts) throw new ConcurrencyConflictError(command.streamId, attempt);
        await conflictBackoff(attempt); // holding the lane: the commands behind it would lose the same race
        continue;
      }
      this.logger.debug(
        `${correlationTag(command.metadata)} ${command.streamId}@${appended.version}: appended ${events.map((event) => event.constructor.name).join(', ')} at ${appended.position}`,
      );
      await this.remember(command, loaded, appended, events, inUnitOfWork);
      return appended;
    }
  }

  /**
   * After the append: the state it led to, folded once for the cache and the snapshot both (see
   * AggregateLoader.appended). Nothing here may fail the command: outside a unit of work the append
   * has committed, and an error would invite the caller to send it again (found in review: an
   * evolve that threw here answered a committed append with a 500). A fold that throws may have
   * changed the cached state it started from (evolve shares collections along a fold), so the entry
   * is dropped and the next command reads the stream; no snapshot is written.
   */
  private async remember<State, Event extends object>(
    command: RunCommand<State, Event>,
    loaded: LoadedAggregate<State>,
    appended: AppendResult,
    events: readonly Event[],
    inUnitOfWork: boolean,
  ): Promise<void> {
    let after: State;
    try {
      after = events.reduce((current, event) => command.decider.evolve(current, event), loaded.state);
    } catch (error) {
      this.cache.delete(command.streamId);
      this.logger.error(
        `${correlationTag(command.metadata)} ${command.streamId}@${appended.version}: appended, but folding it failed (not cached, no snapshot): ${(error as Error).stack ?? String(error)}`,
      );
      return;
    }
    const cached = { state: after, version: appended.version, position: appended.position };
    if (inUnitOfWork) {
      // Not before the unit of work commits (it may still roll back); once it has, the next command
      // on the stream (a transfer's next leg, a deposit) decides without reading it again.
      this.cache.delete(command.streamId);
      ambient.getStore()?.afterCommit.push(async () => this.cache.set(command.streamId, command.decider, cached));
    } else {
      this.cache.set(command.streamId, command.decider, cached);
    }
    await this.loader.appended(command.streamId, command.decider, loaded, appended, after);
  }

  /**
   * The state this process last appended to the stream, if it knows it. Inside a unit of work only
   * for a decider that can copy its state (Decider.copy), and then a copy: the unit of work folds
   * what it appends into it before it has committed, and may roll back, while lone commands go on
   * deciding from the cached state (evolve may change a state's collections in place).
   */
  private cached<State, Event extends object>(
    command: RunCommand<State, Event>,
    inUnitOfWork: boolean,
  ): LoadedAggregate<State> | undefined {
    const { decider } = command;
    if (inUnitOfWork && !decider.copy) return undefined;
    const cached = this.cache.get(command.streamId, decider);
    if (!cached || !inUnitOfWork) return cached;
    return { ...cached, state: decider.copy!(cached.state) };
  }

  /**
   * A stream the command made the id of (RunCommand.newStream), on the first attempt: its initial
   * state, unread. Trusted as the cache is: only an append at NO_STREAM acts on it.
   */
  private assumedNew<State, Event extends object>(command: RunCommand<State, Event>, attempt: number): LoadedAggregate<State> | undefined {
    // Not with a caller's expected version: the append's refusal would be answered as a version
    // mismatch, where reading first answers the decision on the stream as stored (found in review).
    return command.newStream && attempt === 1 && command.expectedVersion === undefined
      ? { state: command.decider.initialState, version: 0, position: 0 }
      : undefined;
  }

  /** The caller's expected version checked against `loaded`, then the pure decision: events or the error to throw. */
  private decide<State, Event extends object>(
    command: RunCommand<State, Event>,
    loaded: LoadedAggregate<State>,
  ): { readonly events: Event[] } | { readonly error: unknown } {
    const { state, version } = loaded;
    if (command.expectedVersion !== undefined && version !== 0 && version !== command.expectedVersion) {
      return { error: new WrongExpectedVersionError(command.streamId, command.expectedVersion, version) };
    }
    try {
      return { events: command.decide(state) };
    } catch (error) {
      this.logger.debug(
        `${correlationTag(command.metadata)} ${command.streamId}@${version}: refused (${(error as { code?: string }).code ?? (error as Error).name})`,
      );
      return { error };
    }
  }
}
