import { ROOT_CONTEXT, type Span, SpanKind, trace } from '@opentelemetry/api';
import { eventLogContext, withLogContext } from './log-context.js';
import { contextFrom, failed, inSpan, startSpan, tracingOn } from './spans.js';

/** What of a stored event its handling needs to be logged and traced (RecordedEvent has it). */
interface HandledEvent {
  readonly type: string;
  readonly position: number;
  readonly streamId: string;
  readonly metadata: { readonly correlationId: string; readonly eventId: string; readonly [key: string]: unknown };
}

/**
 * Runs one projection or process-manager handler for one event: its log lines carry the event's
 * correlation id (and everything the handler does: a process manager's commands), and, tracing,
 * it runs in a span whose parent is the trace context stored in the event at append — so the
 * handling joins the trace of the request that caused the event, across the asynchronous hop.
 * `traced` false (a rebuild replaying the whole log): no span.
 */
export function handleEvent<T>(handler: string, event: HandledEvent, work: () => Promise<T>, traced = true): Promise<T> {
  const logContext = eventLogContext(handler, event);
  if (!traced || !tracingOn()) return withLogContext(logContext, work);
  return inSpan(
    `${handler} ${event.type}`,
    { kind: SpanKind.CONSUMER, parent: contextFrom(event.metadata), attributes: eventAttributes(handler, event) },
    (span) => withLogContext({ ...logContext, traceId: span?.spanContext().traceId }, work),
  );
}

/**
 * Runs a projection's set-based apply of a batch. Its lines carry the correlation id when the batch
 * is of one flow. Tracing, one span per trace the batch's events belong to (a child of the first of
 * its events' stored context), all covering the same apply: every trace shows its events applied,
 * and how many others shared the statement.
 */
export async function handleBatch(
  handler: string,
  events: readonly HandledEvent[],
  work: () => Promise<void>,
  traced = true,
): Promise<void> {
  const [first] = events;
  const oneFlow = first !== undefined && events.every((event) => event.metadata.correlationId === first.metadata.correlationId);
  const logged = () => (oneFlow ? withLogContext(eventLogContext(handler, first), work) : work());
  if (!traced || !tracingOn()) return logged();
  const byTrace = new Map<string, HandledEvent[]>();
  for (const event of events) {
    const traceId = trace.getSpanContext(contextFrom(event.metadata))?.traceId ?? '';
    byTrace.set(traceId, [...(byTrace.get(traceId) ?? []), event]);
  }
  const spans: Span[] = [...byTrace.entries()].map(([traceId, ofTrace]) =>
    startSpan(`${handler} batch`, {
      kind: SpanKind.CONSUMER,
      parent: traceId === '' ? ROOT_CONTEXT : contextFrom(ofTrace[0].metadata),
      attributes: {
        'ledger.handler': handler,
        'ledger.batch.size': events.length,
        'ledger.batch.events_of_trace': ofTrace.length,
        'ledger.event.types': [...new Set(ofTrace.map((event) => event.type))],
        'ledger.event.first_position': ofTrace[0].position,
      },
    }),
  );
  try {
    await logged();
  } catch (error) {
    for (const span of spans) failed(span, error);
    throw error;
  } finally {
    for (const span of spans) span.end();
  }
}

function eventAttributes(handler: string, event: HandledEvent) {
  return {
    'ledger.handler': handler,
    'ledger.event.type': event.type,
    'ledger.event.id': event.metadata.eventId,
    'ledger.event.position': event.position,
    'ledger.stream.id': event.streamId,
    'ledger.correlation_id': event.metadata.correlationId,
  };
}
