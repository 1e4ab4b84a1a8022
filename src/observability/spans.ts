import {
  type Attributes,
  type Context,
  type Link,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  context,
  propagation,
  trace,
} from '@opentelemetry/api';

/**
 * Manual spans with @opentelemetry/api. Off (no SDK started, see tracing.ts) every helper here is
 * a boolean test and a direct call: no span object, no context switch, nothing stored in events.
 */
let on = false;

/** Set by startTracing / its stop: whether spans are made at all. */
export function setTracingOn(value: boolean): void {
  on = value;
}

export function tracingOn(): boolean {
  return on;
}

const tracer = () => trace.getTracer('ledger');

export interface SpanOptions {
  readonly attributes?: Attributes;
  readonly kind?: SpanKind;
  /** The parent (e.g. the context stored in an event); the active context when absent. */
  readonly parent?: Context;
  readonly links?: Link[];
}

/** Runs `work` in a new active span, ended when it settles; an error marks the span and is rethrown. */
export async function inSpan<T>(name: string, options: SpanOptions, work: (span?: Span) => Promise<T>): Promise<T> {
  if (!on) return work();
  const span = tracer().startSpan(
    name,
    { attributes: options.attributes, kind: options.kind, links: options.links },
    options.parent ?? context.active(),
  );
  try {
    return await context.with(trace.setSpan(options.parent ?? context.active(), span), () => work(span));
  } catch (error) {
    failed(span, error);
    throw error;
  } finally {
    span.end();
  }
}

export function failed(span: Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
}

/** A span started by hand (the HTTP request's, which ends when the response closes). */
export function startSpan(name: string, options: SpanOptions): Span {
  return tracer().startSpan(
    name,
    { attributes: options.attributes, kind: options.kind, links: options.links },
    options.parent ?? context.active(),
  );
}

/**
 * The W3C trace context of the active span (`traceparent`, and `tracestate` when there is one), to
 * store in an event's metadata; nothing when tracing is off or no span is active.
 */
export function activeTraceContext(): { traceparent?: string; tracestate?: string } {
  if (!on || trace.getSpan(context.active()) === undefined) return {};
  const carrier: { traceparent?: string; tracestate?: string } = {};
  propagation.inject(context.active(), carrier);
  return carrier;
}

/** The context a carrier (an event's metadata, a request's headers) holds: a remote parent, or none. */
export function contextFrom(carrier: object): Context {
  return propagation.extract(ROOT_CONTEXT, carrier);
}

export { SpanKind, context, trace };
