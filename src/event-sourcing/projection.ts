import type { EntityManager } from 'typeorm';
import type { EventClass } from './event-type.js';
import type { RecordedEvent } from './recorded-event.js';

export type ProjectionHandler<E extends object> = (event: RecordedEvent<E>, manager: EntityManager) => Promise<void>;

/** One handler per event class a projection cares about; events of other classes are ignored. */
export class ProjectionHandlers {
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
 * - inline: applied in the append's own transaction (a query right after a command sees it; every
 *   append pays for it);
 * - async: applied after commit by the projection's runner, from its checkpoint (appends stay lean;
 *   queries ask for read-your-writes with minPosition).
 */
export type ProjectionMode = 'inline' | 'async';

/**
 * A read model kept from the event log. Handlers must only write the projection's own `tables`
 * (unqualified names) through the manager they are given: that is what lets the same code run inline
 * with an append and during a rebuild.
 */
export interface Projection {
  readonly name: string;
  readonly mode: ProjectionMode;
  readonly tables: readonly string[];
  readonly handlers: ProjectionHandlers;
}
