import { EventResponse } from '../event-log/event.response.js';
import type { RecordedEvent } from '../event-sourcing/index.js';
import type { OutgoingEvent } from './event-transport.js';

/** Metadata keys carried as headers when an event has them (the trace context of the request that wrote it). */
const TRACE_KEYS = ['traceparent', 'tracestate'] as const;

/** `account-5b0e…` → (`account`, `5b0e…`): the category is what precedes the first dash. */
export function splitStreamId(streamId: string): { category: string; entityId: string } {
  const dash = streamId.indexOf('-');
  if (dash <= 0) return { category: streamId, entityId: streamId };
  return { category: streamId.slice(0, dash), entityId: streamId.slice(dash + 1) };
}

export function toOutgoingEvent(event: RecordedEvent): OutgoingEvent {
  const headers: Record<string, string> = {
    'Ledger-Event-Type': event.type,
    'Ledger-Schema-Version': String(event.schemaVersion),
    'Ledger-Position': String(event.position),
    'Ledger-Stream-Version': String(event.version),
    'Ledger-Correlation-Id': event.metadata.correlationId,
    'Ledger-Causation-Id': event.metadata.causationId,
  };
  for (const key of TRACE_KEYS) {
    const value = event.metadata[key];
    if (typeof value === 'string') headers[key] = value;
  }
  return {
    ...splitStreamId(event.streamId),
    messageId: `${event.streamId}:${event.version}`,
    headers,
    body: JSON.stringify(EventResponse.of(event)),
  };
}
