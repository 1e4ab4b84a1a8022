import type { SpanProcessor } from '@opentelemetry/sdk-trace';
import { setTracingOn } from './spans.js';

export interface Tracing {
  /** Flushes the spans not exported yet and stops the SDK. */
  stop(): Promise<void>;
}

/**
 * Whether the OpenTelemetry SDK is to run: an OTLP endpoint or a traces exporter is configured by the
 * standard variables (and the SDK is not disabled). Otherwise it is not even loaded.
 */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED === 'true') return false;
  const exporter = env.OTEL_TRACES_EXPORTER;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || (exporter && exporter !== 'none'));
}

/**
 * Starts the OpenTelemetry Node SDK, configured by the OTEL_* variables (exporter, endpoint,
 * headers, sampler, propagators, resource; service name `ledger` unless OTEL_SERVICE_NAME says
 * otherwise), with no auto-instrumentation: the spans are the application's own (spans.ts), so the
 * SDK need not load before Nest, pg or http, and no ESM loader hook is needed. `spanProcessors`
 * replaces the exporter (the tests' in-memory one).
 */
export async function startTracing(options: { readonly spanProcessors?: SpanProcessor[] } = {}): Promise<Tracing> {
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const sdk = new NodeSDK({
    ...(process.env.OTEL_SERVICE_NAME ? {} : { serviceName: 'ledger' }),
    instrumentations: [],
    ...(options.spanProcessors ? { spanProcessors: options.spanProcessors } : {}),
  });
  sdk.start();
  setTracingOn(true);
  return {
    async stop() {
      setTracingOn(false);
      await sdk.shutdown();
    },
  };
}
