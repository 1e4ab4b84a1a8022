/** Who and what caused an event; stored as jsonb next to the event's data. */
export interface EventMetadata {
  readonly eventId: string;
  readonly correlationId: string;
  readonly causationId: string;
  /** ISO 8601 instant at which the fact happened (given by the command side, not by the database). */
  readonly occurredAt: string;
  readonly actor?: string;
  readonly [key: string]: unknown;
}

/** An event as it is stored: the domain event plus where it sits in its stream and in the global log. */
export interface RecordedEvent<E extends object = object> {
  readonly streamId: string;
  /** 1-based version of the stream after this event. */
  readonly version: number;
  /** Global position, unique and increasing in insert order (not in commit order). */
  readonly position: number;
  readonly type: string;
  readonly schemaVersion: number;
  readonly data: E;
  readonly metadata: EventMetadata;
  readonly recordedAt: Date;
  /** The id of the transaction that wrote the event (xid8, as a decimal string). */
  readonly transactionId: string;
}

/**
 * Where a reader of the global log stands. Commit order is (transactionId, position): see
 * EventStore.readAll for why a position alone is not enough.
 */
export interface Checkpoint {
  readonly transactionId: string;
  readonly position: number;
}

export const START_OF_LOG: Checkpoint = Object.freeze({ transactionId: '0', position: 0 });

export function checkpointOf(event: RecordedEvent): Checkpoint {
  return { transactionId: event.transactionId, position: event.position };
}
