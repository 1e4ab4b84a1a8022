import { handleEvent } from '../observability/event-handling.js';
import type { EventClass } from './event-type.js';
import type { RecordedEvent } from './recorded-event.js';

/**
 * A process manager's step for one event: it acts (commands, appends, a publish), each action in a
 * transaction of its own, fenced by the engine's lease (runFenced). It is given no EntityManager: it
 * writes no table of its own, so there is nothing to hand it and nothing to rebuild.
 */
export type ReactionHandler<E extends object> = (event: RecordedEvent<E>) => Promise<void>;

/** One handler per event class a process manager reacts to (or one for every event); others are ignored. */
export class ReactionHandlers {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- one map for handlers of different event types; on() keeps each pair consistent
  private readonly handlers = new Map<Function, ReactionHandler<any>>();
  private every?: ReactionHandler<object>;

  on<E extends object>(eventClass: EventClass<E>, handler: ReactionHandler<E>): this {
    if (this.handlers.has(eventClass)) throw new Error(`${eventClass.name} is handled twice`);
    if (this.every) throw new Error('onEvery() already reacts to every event');
    this.handlers.set(eventClass, handler);
    return this;
  }

  /** Reacts to every event of the log (the relay publishes them all); excludes on(). */
  onEvery(handler: ReactionHandler<object>): this {
    if (this.handlers.size > 0 || this.every) throw new Error('onEvery() excludes any other handler');
    this.every = handler;
    return this;
  }

  handlerFor(event: RecordedEvent): ReactionHandler<object> | undefined {
    return this.every ?? this.handlers.get(event.data.constructor);
  }
}

/**
 * Reacts to events of the log with actions of its own (a saga: the transfer process; an outbox
 * relay), on the projection engine: a checkpoint in commit order per segment, a fenced lease,
 * segments by `keyOf`, lanes within a segment, status, retries and the failure policy. Unlike a
 * Projection it keeps no table, so it has no mode (always after commit), no applyBatch and nothing
 * to rebuild (the engine refuses a rebuild of it).
 *
 * Its steps are run at least once: a crash or a lease lost between a step and the checkpoint's write
 * runs the step again (events of other lanes completed past a failure are written with the
 * checkpoint and not run again: completed-ahead.ts). So every step must be idempotent (decided from
 * its own stream's state, never from the event alone).
 */
export interface ProcessManager {
  /** The discriminant the engine runs it by (a Projection has none, or 'projection'). */
  readonly kind: 'process-manager';
  readonly name: string;
  readonly handlers: ReactionHandlers;
  /**
   * What orders its events: events of one key are reacted to in commit order, by one segment and
   * one lane; different keys may go concurrently. Default: the stream id. Must be a function of the
   * event alone, the same in every process and release.
   */
  keyOf?(event: RecordedEvent): string;
  /**
   * How many keys of a batch it may react to at once, overriding PROJECTION_REACTION_CONCURRENCY.
   * Events of other keys completed past a failure are remembered with the checkpoint and not reacted
   * to again (completed-ahead.ts).
   */
  readonly reactionConcurrency?: number;
}

/**
 * Thrown by a process manager's step that gave up because the process is stopping (the relay, told
 * to stop waiting for the broker): not a failure of the event. No attempt is counted; the checkpoint
 * stays before the event, for the next holder.
 */
export class ReactionAbandoned extends Error {}

/** Whether any event of the batch has a handler: a batch with none moves the checkpoint without a step. */
export function reactsToAny(manager: ProcessManager, events: readonly RecordedEvent[]): boolean {
  return events.some((event) => manager.handlers.handlerFor(event) !== undefined);
}

/**
 * Runs the process manager's handler for one event (nothing when it has none), with the event's
 * correlation id on its log lines and, tracing, in a span continuing the event's stored trace context.
 */
export async function reactTo(manager: ProcessManager, event: RecordedEvent): Promise<void> {
  const handler = manager.handlers.handlerFor(event);
  if (handler) await handleEvent(manager.name, event, () => handler(event), true);
}

export function assertValidProcessManager(manager: ProcessManager): void {
  if (!(manager.handlers instanceof ReactionHandlers)) {
    throw new Error(`Process manager "${manager.name}" must define its handlers as ReactionHandlers`);
  }
  // A plain object may carry a projection's members: say which contract it meant.
  const stray = ['tables', 'mode', 'applyBatch', 'handles'].filter((member) => member in manager);
  if (stray.length > 0) {
    throw new Error(
      `Process manager "${manager.name}" declares ${stray.join(', ')}: a process manager keeps no table ` +
        '(a read model is a Projection)',
    );
  }
}
