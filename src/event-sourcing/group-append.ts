import type pg from 'pg';
import type { DataSource } from 'typeorm';
import type { Clock } from './clock.js';
import { WrongExpectedVersionError } from './errors.js';
import {
  type AppendOptions,
  type AppendResult,
  type EventToStore,
  EventStoreTransaction,
  prepareEvents,
  recordedEvents,
  storedEvents,
} from './event-store-transaction.js';
import type { EventTypeRegistry } from './event-type.registry.js';
import { type ExpectedVersion, toSqlExpectedVersion } from './expected-version.js';
import { GROUP_APPEND_SQL, type GroupAppendRow } from './group-append-sql.js';
import { appendLoneEvent, isLoneEvent } from './lone-event-append.js';
import { type GroupCommitLimits, type GroupCommitStats, GroupCommitter, type GroupOutcome } from './group-commit.js';
import type { ProjectionRegistry } from './projection.registry.js';
import { prepared } from './sql.js';

interface PendingAppend {
  readonly streamId: string;
  readonly eventCount: number;
  readonly expectedVersion: ExpectedVersion;
  readonly toStore: readonly EventToStore[];
}

/** Events per group statement: large enough for any realistic burst, small enough to plan and log. */
const MAX_GROUP_EVENTS = 1000;

/**
 * One group statement in flight by default, whatever the pool: measured on 2 cores (docs/BENCHMARKS.md),
 * 1 gave the largest groups and the most appends per second at 8 and 32 clients (2, 3, 4 and 8 were
 * each slower; a quarter of the pool, the first choice, was 2x slower at 32). The database's CPU per
 * transaction is the limit, not its connections. A machine with more cores may set
 * APPEND_GROUP_STATEMENTS higher; never above the pool, whose other connections serve reads, units of
 * work and projections.
 */
export function groupCommitLimits(poolSize: number, statements = 1): GroupCommitLimits {
  return { maxInFlight: Math.max(1, Math.min(statements, poolSize)), maxEvents: MAX_GROUP_EVENTS };
}

/**
 * The appends that need no transaction of their own (outside a unit of work, exact expected
 * version, no inline projection, no fence; see EventStore.canAppendAlone), group-committed: a lone
 * one is one statement on its own (a plain INSERT for one event), concurrent ones to different
 * streams share one GROUP_APPEND_SQL.
 */
export class GroupAppend {
  private readonly committer: GroupCommitter<PendingAppend, AppendResult>;
  private limits: GroupCommitLimits | undefined;

  constructor(
    private readonly dataSource: DataSource,
    private readonly registry: EventTypeRegistry,
    private readonly projections: ProjectionRegistry,
    private readonly clock: Clock,
    statements?: number,
  ) {
    this.committer = new GroupCommitter(
      { alone: (append) => this.alone(append), together: (appends) => this.together(appends) },
      // The pool exists once the DataSource is initialised, which may be after this is constructed.
      () => (this.limits ??= groupCommitLimits((dataSource.driver as unknown as { master: pg.Pool }).master.options.max, statements)),
    );
  }

  get stats(): Readonly<GroupCommitStats> {
    return this.committer.stats;
  }

  async append(streamId: string, events: readonly object[], options: AppendOptions): Promise<AppendResult> {
    toSqlExpectedVersion(options.expectedVersion); // refuses a malformed version before it queues
    const toStore = prepareEvents(this.registry, this.clock, events, options);
    return this.committer.submit({ streamId, eventCount: toStore.length, expectedVersion: options.expectedVersion, toStore });
  }

  /**
   * One event: a plain INSERT (lone-event-append.ts); refused, or several events: the checked
   * append, whose refusal is a WrongExpectedVersionError with the stream's actual version.
   */
  private async alone(append: PendingAppend): Promise<AppendResult> {
    const { streamId, toStore, expectedVersion } = append;
    if (isLoneEvent(toStore, expectedVersion)) {
      const row = await appendLoneEvent(this.dataSource.manager, streamId, toStore, expectedVersion);
      if (row) {
        const events = recordedEvents(streamId, toStore, [row]);
        return { streamId, version: row.version, position: events[0].position, events };
      }
    }
    const transaction = new EventStoreTransaction(this.dataSource.manager, this.registry, this.projections, this.clock);
    return transaction.appendPrepared(streamId, toStore, expectedVersion);
  }

  private async together(appends: readonly PendingAppend[]): Promise<Array<GroupOutcome<AppendResult>>> {
    const payload = JSON.stringify(
      appends.map((append) => ({
        streamId: append.streamId,
        expectedVersion: toSqlExpectedVersion(append.expectedVersion),
        events: storedEvents(append.toStore),
      })),
    );
    const rows = await prepared<GroupAppendRow>(this.dataSource.manager, GROUP_APPEND_SQL, [payload]);
    const rowsOf = appends.map((): GroupAppendRow[] => []);
    for (const row of rows) rowsOf[Number(row.n) - 1].push(row);
    return appends.map((append, index): GroupOutcome<AppendResult> => {
      const own = rowsOf[index];
      if (own[0].position === null) {
        return { error: new WrongExpectedVersionError(append.streamId, append.expectedVersion, own[0].current_version) };
      }
      const events = recordedEvents(append.streamId, append.toStore, own);
      const last = events[events.length - 1];
      return { value: { streamId: append.streamId, version: last.version, position: last.position, events } };
    });
  }
}
