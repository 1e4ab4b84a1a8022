import { eventTypeOf } from '../event-type.js';
import type { EventMetadata, RecordedEvent } from '../recorded-event.js';

export interface TestEventLogOptions {
  /** occurredAt of the first event; each later event happens one second after the one before. */
  readonly start?: string;
  /** Position of the first event (later ones follow one by one). */
  readonly firstPosition?: number;
}

/**
 * Builds events the way the store records them, for projection tests: each stream numbered from
 * version 1, one global position per event (increasing), one transaction per event (its id
 * increasing with the position, so the log's commit order is the order of record()), the stable type
 * name and schema version from @EventType, and metadata with ids and an occurredAt that are the same
 * on every run:
 *
 *   const log = new TestEventLog();
 *   const opened = log.record(accountStreamId(id), new AccountOpened({ … }));   // version 1, position 1
 *   const deposited = log.record(accountStreamId(id), new MoneyDeposited({ … })); // version 2, position 2
 *
 * Fields can be overridden per event (e.g. a version written out of order, to see a guard hold).
 */
export class TestEventLog {
  private nextPosition: number;
  private readonly startMs: number;
  private readonly versions = new Map<string, number>();
  private count = 0;

  constructor(options: TestEventLogOptions = {}) {
    this.nextPosition = options.firstPosition ?? 1;
    this.startMs = Date.parse(options.start ?? '2026-01-01T00:00:00.000Z');
    if (!Number.isFinite(this.startMs)) throw new Error(`TestEventLog: invalid start ${options.start}`);
  }

  record<E extends object>(
    streamId: string,
    data: E,
    overrides: Partial<Omit<RecordedEvent<E>, 'data' | 'metadata'>> & { readonly metadata?: Partial<EventMetadata> } = {},
  ): RecordedEvent<E> {
    const position = overrides.position ?? this.nextPosition;
    this.nextPosition = Math.max(this.nextPosition, position) + 1;
    const version = overrides.version ?? (this.versions.get(streamId) ?? 0) + 1;
    this.versions.set(streamId, Math.max(this.versions.get(streamId) ?? 0, version));
    const occurredAt = new Date(this.startMs + 1000 * this.count++).toISOString();
    const eventId = idOf(position);
    const { type, schemaVersion } = eventTypeOf(data.constructor);
    return {
      streamId,
      version,
      position,
      type,
      schemaVersion,
      transactionId: String(position),
      recordedAt: new Date(overrides.metadata?.occurredAt ?? occurredAt),
      ...overrides,
      data,
      metadata: { eventId, correlationId: eventId, causationId: eventId, occurredAt, ...overrides.metadata },
    };
  }

  /** Several events of one stream, in order. */
  recordAll<E extends object>(streamId: string, events: readonly E[]): Array<RecordedEvent<E>> {
    return events.map((data) => this.record(streamId, data));
  }
}

/** A valid UUID (version 4 layout) that names the position, so ids are the same on every run. */
function idOf(position: number): string {
  return `00000000-0000-4000-8000-${position.toString(16).padStart(12, '0')}`;
}
