import { Inject, Injectable, Optional } from '@nestjs/common';
import { EventBus } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import { Clock } from './clock.js';
import { conflictBackoff } from './conflict-backoff.js';
import { COMMAND_RUNNER_OPTIONS, type CommandRunnerOptions } from './command-runner-options.js';
import { ConcurrencyConflictError, UnitOfWorkAborted, UnitOfWorkEnded, UnitOfWorkConflict, WrongExpectedVersionError } from './errors.js';
import {
  type AppendOptions,
  type AppendResult,
  EventStoreTransaction,
  StreamVersionTaken,
  type UnitOfWorkOptions,
  ambient,
  savepointName,
} from './event-store-transaction.js';
import { EventTypeRegistry } from './event-type.registry.js';
import type { RecordedEvent } from './recorded-event.js';
import { ANY } from './expected-version.js';
import { EventNotifier } from './event-notifier.js';
import { StreamLanes } from './stream-lanes.js';
import { GroupAppend } from './group-append.js';
import { currentFence } from './lease-fence.js';
import { inTransaction } from './fenced-transaction.js';
import { ProjectionRegistry } from './projection.registry.js';
import { StreamReads } from './stream-reads.js';
import { inSpan } from '../observability/spans.js';

export {
  type AppendOptions,
  type AppendResult,
  EventStoreTransaction,
  type UnitOfWorkOptions,
  ambientManager,
} from './event-store-transaction.js';
export type { StoredSnapshot } from './stream-reads.js';
export type { LogBatch, ReadAllResult } from './commit-order-log.js';

/**
 * The command side's event store: appends (alone, or in a unit of work that restarts on a
 * UnitOfWorkConflict), publishing on the EventBus after COMMIT, and the reads of one stream, which
 * join the unit of work in progress. The global log is read elsewhere (CommitOrderLog).
 *
 * From an append to the projections that apply it: after the COMMIT, `committed` tells the
 * EventNotifier, which wakes this process's ProjectionRunners and live feeds at once and the other
 * instances' by a throttled NOTIFY sent outside the append's transaction (a NOTIFY inside it would
 * serialise every commit: see event-notifier.ts). A runner reads the log after its checkpoint
 * (CommitOrderLog.readBatch) and applies the batch. Runners also poll, so a lost wake-up only delays.
 */
@Injectable()
export class EventStore extends StreamReads {
  /** Where appends that need no transaction of their own are group-committed (its stats are public). */
  readonly groupAppend: GroupAppend;

  /**
   * This process's turns per stream (StreamLanes): lone commands (CommandRunner) take them, and a
   * unit of work that lost a race on a stream takes that stream's for its next attempt.
   */
  private readonly lanes: StreamLanes;

  constructor(
    private readonly dataSource: DataSource,
    registry: EventTypeRegistry,
    private readonly projections: ProjectionRegistry,
    private readonly eventBus: EventBus,
    private readonly clock: Clock,
    private readonly notifier: EventNotifier,
    @Optional() @Inject(COMMAND_RUNNER_OPTIONS) private readonly commandOptions: CommandRunnerOptions = { maxAttempts: 10 },
  ) {
    // Reads join the ambient unit of work when there is one (they see its own writes, and a unit of
    // work never needs a second pooled connection, which could exhaust the pool).
    super(() => ambient.getStore()?.manager ?? dataSource.manager, registry);
    this.groupAppend = new GroupAppend(dataSource, registry, projections, clock, commandOptions.appendGroupStatements);
    this.lanes = new StreamLanes(commandOptions.laneMaxWaitMs);
  }

  /**
   * Appends atomically to one stream; with `ANY`, a race with another writer is retried. Tracing,
   * in a span whose context every appended event stores (prepareEvents), for its handlers to continue.
   */
  append(streamId: string, events: readonly object[], options: AppendOptions): Promise<AppendResult> {
    return inSpan(
      'event-store append',
      { attributes: { 'ledger.stream.id': streamId, 'ledger.events.count': events.length } },
      async (span) => {
        const result = await this.appendUntraced(streamId, events, options);
        span?.setAttributes({ 'ledger.stream.version': result.version, 'ledger.event.position': result.position });
        return result;
      },
    );
  }

  private async appendUntraced(streamId: string, events: readonly object[], options: AppendOptions): Promise<AppendResult> {
    if (this.canAppendAlone(options)) return this.appendAlone(streamId, events, options);
    const outer = ambient.getStore();
    if (outer?.options.flat && options.expectedVersion !== ANY) return this.appendJoined(outer, streamId, events, options);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.transaction((tx) => tx.append(streamId, events, options));
      } catch (error) {
        if (!(options.expectedVersion === ANY && error instanceof WrongExpectedVersionError && attempt < 5)) throw error;
      }
    }
  }

  /**
   * Outside any unit of work, at an exact expected version and with no inline projection to update,
   * an append needs no transaction of its own: it is group-committed (group-append.ts), alone as one
   * statement (APPEND_SQL) when nothing else is in flight, or in one statement and one commit with
   * the concurrent appends to other streams. BEGIN and COMMIT around it would only add two round
   * trips (measured: docs/BENCHMARKS.md). ANY needs its lock statement first; inline projections
   * write in the append's transaction.
   */
  private canAppendAlone(options: AppendOptions): boolean {
    // A lease holder's append must run in a transaction: its fence is checked with the COMMIT.
    return (
      ambient.getStore() === undefined && options.expectedVersion !== ANY && !this.projections.hasInline() && currentFence() === undefined
    );
  }

  private async appendAlone(streamId: string, events: readonly object[], options: AppendOptions): Promise<AppendResult> {
    let result: AppendResult;
    try {
      result = await this.groupAppend.append(streamId, events, options);
    } catch (error) {
      throw await this.asVersionConflict(error);
    }
    this.committed(result.events); // the statement returned: it committed
    return result;
  }

  /**
   * An append joining a flat unit of work (UnitOfWorkOptions.flat): one statement in its transaction,
   * no savepoint. A version taken meanwhile has aborted the transaction: the unit of work starts over.
   * A version found moved on (no statement failed) is WrongExpectedVersionError, as usual.
   */
  private async appendJoined(
    outer: EventStoreTransaction,
    streamId: string,
    events: readonly object[],
    options: AppendOptions,
  ): Promise<AppendResult> {
    let result: AppendResult;
    try {
      result = await outer.append(streamId, events, options);
    } catch (error) {
      if (error instanceof StreamVersionTaken) throw new UnitOfWorkConflict(streamId, 'a concurrent writer took its next version');
      throw error;
    }
    try {
      await this.verifyNestedFence(outer);
    } catch (error) {
      // Without a savepoint, a refused check (a failed statement) has aborted the whole transaction:
      // recorded, so that work swallowing the refusal cannot see the unit of work reported committed
      // (its COMMIT would silently roll back) nor its appends published (found in review).
      outer.failure ??= error;
      throw error;
    }
    return result;
  }

  /**
   * Fenced work nested in a unit of work opened under another fence (or none) is checked where it
   * runs: the outer COMMIT checks only the fence it started under (found in review). The fence's row
   * lock lasts until that COMMIT. Under the same fence, the COMMIT's check covers it.
   */
  private async verifyNestedFence(outer: EventStoreTransaction): Promise<void> {
    const fence = currentFence();
    if (fence && fence !== outer.fence) await fence.verify(outer.manager);
  }

  /** After COMMIT, never before: the in-process EventBus, then the log's readers (if it appended). */
  private committed(appended: readonly RecordedEvent[]): void {
    if (appended.length === 0) return;
    this.eventBus.publishAll(appended.map((event) => event.data));
    this.notifier.appendCommitted(appended);
  }

  /** A version taken by a concurrent writer becomes the typed conflict, with the stream's actual version. */
  private async asVersionConflict(error: unknown): Promise<unknown> {
    if (!(error instanceof StreamVersionTaken)) return error;
    return new WrongExpectedVersionError(error.streamId, error.expectedVersion, await this.streamVersion(error.streamId));
  }

  /** The lanes' queue now (metrics at scrape time): works waiting for their turn, streams with work. */
  get laneDepth(): { readonly waiting: number; readonly streams: number } {
    return this.lanes.depth;
  }

  /** Calls `listener` with how long each work run in a lane waited for its turn, in ms (metrics). */
  onLaneTurn(listener: (waitedMs: number) => void): void {
    this.lanes.onTurn(listener);
  }

  /**
   * Runs `work` in `streamId`'s turn (StreamLanes). Work of a process manager (under a lease fence)
   * waits as long as it takes instead of COMMAND_LANE_MAX_WAIT_MS: no client waits for it, and a
   * refusal would count as a failed reaction, of which PROJECTION_MAX_ATTEMPTS stop the whole
   * process manager in `failed` (one hot account must not). Its wait is then the turns of the work
   * queued ahead of it: the clients' commands wait at most COMMAND_LANE_MAX_WAIT_MS each for their
   * turn, but a turn itself lasts as long as its work (a lock, races with another instance).
   */
  inLane<T>(streamId: string, work: () => Promise<T>): Promise<T> {
    return this.lanes.run(streamId, work, currentFence() ? Number.POSITIVE_INFINITY : undefined);
  }

  /**
   * Runs `work` in one PostgreSQL transaction. Events appended through `tx` are published on the
   * EventBus only after COMMIT succeeds, never on rollback. Called while another unit of work is
   * running (see `ambient`), `work` joins that transaction inside a SAVEPOINT instead: a failure rolls
   * back only what `work` did, and publishing waits for the outer COMMIT.
   *
   * A UnitOfWorkConflict (a lost race inside the unit of work, or a stream last written by a younger
   * transaction) rolls the whole transaction back and runs `work` again on a new one, which gets a
   * new, younger transaction id: never under a savepoint, whose transaction keeps its old id and
   * would list the stream out of version order (see migration 1764230400012). `work` must therefore
   * be safe to run again from the start (it is: everything it wrote was rolled back).
   *
   * `options.flat` (UnitOfWorkOptions): appends at an exact version made inside join the transaction
   * without a savepoint each; a lost version race then restarts the whole unit of work.
   */
  async transaction<T>(work: (tx: EventStoreTransaction) => Promise<T>, options: UnitOfWorkOptions = {}): Promise<T> {
    const outer = ambient.getStore();
    if (outer) return this.nested(outer, work);
    let contended: string | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        // After a lost race on a stream, the next attempt takes that stream's lane (before BEGIN,
        // and only that one: no cycle between two units of work), so that the lone commands of this
        // process, which decide from the aggregate cache without a read, cannot win it again and
        // again (found in review: 28 % of idempotent deposits to a hot account refused).
        return contended === undefined ? await this.once(work, options) : await this.inLane(contended, () => this.once(work, options));
      } catch (error) {
        if (!(error instanceof UnitOfWorkConflict)) throw error;
        if (attempt >= this.commandOptions.maxAttempts) throw new ConcurrencyConflictError(error.streamId, attempt);
        contended = error.streamId;
        await conflictBackoff(attempt);
      }
    }
  }

  private async once<T>(work: (tx: EventStoreTransaction) => Promise<T>, options: UnitOfWorkOptions): Promise<T> {
    let tx: EventStoreTransaction | undefined;
    try {
      const fence = currentFence();
      const result = await inTransaction(this.dataSource, fence, async (manager) => {
        tx = new EventStoreTransaction(manager, this.registry, this.projections, this.clock, options, fence);
        const result = await ambient
          .run(tx, () => work(tx!))
          .catch(async (error: unknown) => {
            // A conflict after the work ended the transaction itself must not run the work again: what
            // its own COMMIT stored would be done twice (found in review).
            if (error instanceof UnitOfWorkConflict && (await tx!.status()) === 'ended') throw new UnitOfWorkEnded();
            throw error;
          });
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows what work caught, unchanged
        if (tx.failure !== undefined) throw tx.failure; // work swallowed an error that aborted the transaction
        // Any other failed statement whose error the work swallowed (its own query, a read): COMMIT
        // would silently roll back, and the unit of work must not be reported committed, nor its
        // appends published (found in review). Nor when the work ended the transaction itself.
        const status = await tx.status();
        if (status === 'aborted') throw new UnitOfWorkAborted();
        if (status === 'ended') throw new UnitOfWorkEnded();
        // Work of a projection's lease holder commits only while it holds the lease: inTransaction
        // checks it with the COMMIT (see lease-fence.ts).
        return result;
      });
      this.committed(tx!.appended);
      for (const after of tx!.afterCommit) await after(); // each handles its own failure (a snapshot is a cache)
      return result;
    } catch (error) {
      throw await this.asVersionConflict(error);
    }
  }

  private async nested<T>(outer: EventStoreTransaction, work: (tx: EventStoreTransaction) => Promise<T>): Promise<T> {
    const savepoint = savepointName();
    const appendedBefore = outer.appended.length;
    const afterCommitBefore = outer.afterCommit.length;
    const failureBefore = outer.failure;
    await outer.manager.query(`SAVEPOINT ${savepoint}`);
    try {
      const result = await work(outer);
      if (outer.failure !== failureBefore) throw outer.failure;
      await this.verifyNestedFence(outer);
      await outer.manager.query(`RELEASE SAVEPOINT ${savepoint}`);
      return result;
    } catch (error) {
      await outer.manager.query(`ROLLBACK TO SAVEPOINT ${savepoint}`);
      outer.appended.length = appendedBefore; // rolled back: never to be published
      outer.afterCommit.length = afterCommitBefore; // nor snapshotted
      outer.failure = failureBefore;
      throw await this.asVersionConflict(error);
    }
  }
}
