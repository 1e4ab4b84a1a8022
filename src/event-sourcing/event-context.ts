import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Why events are being written right now: the request or message that started the work (correlation),
 * the command or event that directly caused it (causation) and who asked (actor). The HTTP edge or a
 * process manager sets it; the event store copies it into every event's metadata.
 */
export interface EventContext {
  readonly correlationId: string;
  readonly causationId: string;
  readonly actor?: string;
}

const storage = new AsyncLocalStorage<EventContext>();

export function runInEventContext<T>(context: EventContext, work: () => T): T {
  return storage.run(context, work);
}

export function currentEventContext(): EventContext | undefined {
  return storage.getStore();
}
