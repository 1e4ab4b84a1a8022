import { type ProcessManager, reactsToAny } from './process-manager.js';
import { type Projection, type ProjectionMode, handlesAny } from './projection.js';
import type { RecordedEvent } from './recorded-event.js';

/**
 * What the projection engine runs, each on its own checkpoints, segments and leases: a Projection
 * (a read model: tables, applied in a transaction with its checkpoint, rebuildable) or a
 * ProcessManager (reactions with actions of their own, no table). The engine tells them apart by
 * `kind`, never by what they happen to declare.
 */
export type Subscriber = Projection | ProcessManager;

export function isProcessManager(subscriber: Subscriber): subscriber is ProcessManager {
  return subscriber.kind === 'process-manager';
}

/** A process manager always runs after commit. */
export function modeOf(subscriber: Subscriber): ProjectionMode {
  return isProcessManager(subscriber) ? 'async' : subscriber.mode;
}

/** The key of an event for a subscriber's segments (its keyOf, or the stream by default). */
export function keyOf(subscriber: Subscriber, event: RecordedEvent): string {
  return subscriber.keyOf ? subscriber.keyOf(event) : event.streamId;
}

/** Whether the batch has anything for the subscriber: a batch with nothing moves the checkpoint without a step. */
export function concernsAny(subscriber: Subscriber, events: readonly RecordedEvent[]): boolean {
  return isProcessManager(subscriber) ? reactsToAny(subscriber, events) : handlesAny(subscriber, events);
}
