import type { EntityManager } from 'typeorm';
import { handleBatch, handleEvent } from '../observability/event-handling.js';
import type { EventClass } from './event-type.js';
import type { RecordedEvent } from './recorded-event.js';

export type ProjectionHandler<E extends object> = (event: RecordedEvent<E>, manager: EntityManager) => Promise<void>;

/** One handler per event class a projection cares about; events of other classes are ignored. */
export class ProjectionHandlers {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- one map for handlers of different event types; on() keeps each pair consistent
  private readonly handlers = new Map<Function, ProjectionHandler<any>>();

  on<E extends object>(eventClass: EventClass<E>, handler: ProjectionHandler<E>): this {
    if (this.handlers.has(eventClass)) throw new Error(`${eventClass.name} is handled twice`);
    this.handlers.set(eventClass, handler);
    return this;
  }

  handlerFor(event: RecordedEvent): ProjectionHandler<object> | undefined {
    return this.handlers.get(event.data.constructor);
  }
}

/**
 * Whether applying the events could change anything: some event has a handler, or, for applyBatch,
 * is of a class listed in `handles` (every event counts when the projection lists none).
 */
export function handlesAny(projection: Projection, events: readonly RecordedEvent[]): boolean {
  if (projection.handlers) return events.some((event) => projection.handlers!.handlerFor(event) !== undefined);
  const classes = projection.handles;
  if (!classes) return events.length > 0;
  return events.some((event) => classes.some((eventClass) => event.data instanceof eventClass));
}

/**
 * - inline: applied in the append's own transaction (a query right after a command sees it; every
 *   append pays for it);
 * - async: applied after commit by the projection's runner, from its checkpoint (appends stay lean;
 *   queries ask for read-your-writes with minPosition).
 */
export type ProjectionMode = 'inline' | 'async';

/**
 * A read model kept from the event log, applied either event by event (`handlers`) or a batch at a
 * time (`applyBatch`, for set-based SQL: one statement per batch instead of one per event). Either
 * way the code must only write the projection's own `tables`, by unqualified names, through the
 * manager it is given (that is what lets the same code run inline with an append, in the runner and
 * into a rebuild's fresh copy), and must be idempotent per event: applying an event already applied
 * changes nothing. Something that reacts to events without tables of its own is a ProcessManager
 * (process-manager.ts), not a Projection: the registry refuses a projection with no table.
 */
export interface Projection {
  /** Optional: a Projection is what the engine runs unless `kind` says 'process-manager'. */
  readonly kind?: 'projection';
  readonly name: string;
  readonly mode: ProjectionMode;
  /** The tables it writes, at least one; each belongs to one projection. */
  readonly tables: readonly string[];
  readonly handlers?: ProjectionHandlers;
  /**
   * For applyBatch: the event classes it reads. A batch with none of them changes nothing, so the
   * runner moves the checkpoint past it without a transaction. Leave out to have every batch applied.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any event class: a constructor's data parameter makes EventClass<object> reject them
  readonly handles?: ReadonlyArray<EventClass<any>>;
  /** Must give the same rows as applying the events one by one, in order. */
  applyBatch?(events: readonly RecordedEvent[], manager: EntityManager): Promise<void>;
  /**
   * What orders its events (async only): events of one key are applied in commit order by one
   * segment; events of different keys may be applied by different segments concurrently. Default:
   * the stream id. Must be a function of the event alone, the same in every process and release.
   */
  keyOf?(event: RecordedEvent): string;
  /**
   * True: its live batches always commit in transactions of their own. By default a batch shares its
   * transaction with the other read models' batches ready in the same turn (read-model-batch-commits.ts):
   * fewer round trips and commits, but a slow batch (heavy handlers) holds its peers' back for as
   * long as it takes, a lock only for SHARED_LOCK_TIMEOUT_MS. Set it for such a read model.
   */
  readonly commitsAlone?: boolean;
}

/** Applying failed; `index` is the failing event's index in the batch when it is known. */
export class ProjectionApplyError extends Error {
  constructor(
    readonly index: number | undefined,
    readonly error: unknown,
  ) {
    super(error instanceof Error ? error.message : String(error));
  }
}

export function assertValidProjection(projection: Projection): void {
  if (!Array.isArray(projection.tables) || projection.tables.length === 0) {
    throw new Error(
      `Projection "${projection.name}" declares no tables: a projection is a read model and writes tables of its own; ` +
        "something that only reacts to events is a ProcessManager (kind: 'process-manager', ReactionHandlers)",
    );
  }
  if (!projection.handlers === !projection.applyBatch) {
    throw new Error(`Projection "${projection.name}" must define exactly one of handlers and applyBatch`);
  }
}

/**
 * Applies events to a projection in the manager's transaction (see Projection). Each handler runs
 * with its event's correlation id on its log lines and, tracing, in a span continuing the event's
 * stored trace context (event-handling.ts); `traced` false for a rebuild, which replays the log.
 */
export async function applyToProjection(
  projection: Projection,
  events: readonly RecordedEvent[],
  manager: EntityManager,
  traced = true,
): Promise<void> {
  if (projection.applyBatch) {
    try {
      await handleBatch(projection.name, events, () => projection.applyBatch!(events, manager), traced);
    } catch (error) {
      throw new ProjectionApplyError(events.length === 1 ? 0 : undefined, error);
    }
    return;
  }
  for (const [index, event] of events.entries()) {
    const handler = projection.handlers!.handlerFor(event);
    if (!handler) continue;
    try {
      await handleEvent(projection.name, event, () => handler(event, manager), traced);
    } catch (error) {
      throw new ProjectionApplyError(index, error);
    }
  }
}
