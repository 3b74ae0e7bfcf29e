import { appendFileSync } from 'node:fs';
import { InMemorySpanExporter, ConsoleSpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { InvalidEnvironmentError } from './environment.js';

/**
 * The sample's OpenTelemetry SDK (README, "Tracing"): `OTEL_TRACES_EXPORTER=console` prints each
 * finished span; `OCPP_TRACE_FILE=<file>` appends each as a JSON line (what the tests read).
 * Simple (not batching) processors: a span is written when it ends, nothing waits for a flush.
 * Neither set: no SDK is registered and the library's spans cost nothing.
 */
export function startTracing(env: NodeJS.ProcessEnv = process.env): NodeTracerProvider | null {
  const processors: SpanProcessor[] = [];
  const exporter = env.OTEL_TRACES_EXPORTER;
  if (exporter === 'console') processors.push(new SimpleSpanProcessor(new ConsoleSpanExporter()));
  else if (exporter !== undefined && exporter !== '' && exporter !== 'none') {
    throw new InvalidEnvironmentError('OTEL_TRACES_EXPORTER', `must be "console" or "none" (the sample ships no other exporter), got ${JSON.stringify(exporter)}`);
  }
  if (env.OCPP_TRACE_FILE) processors.push(new SimpleSpanProcessor(new JsonLinesFileExporter(env.OCPP_TRACE_FILE)));
  if (processors.length === 0) return null;
  const provider = new NodeTracerProvider({ spanProcessors: processors });
  // Global tracer provider, W3C propagator and the AsyncLocalStorage context manager.
  provider.register();
  return provider;
}

/** The SDK's in-memory exporter, emptied into a file after each export: one JSON object per span and line. */
class JsonLinesFileExporter extends InMemorySpanExporter implements SpanExporter {
  constructor(private readonly path: string) {
    super();
  }

  override export(spans: ReadableSpan[], resultCallback: Parameters<SpanExporter['export']>[1]): void {
    super.export(spans, (result) => {
      const finished = this.getFinishedSpans();
      this.reset();
      appendFileSync(this.path, finished.map((span) => `${JSON.stringify(spanRecord(span))}\n`).join(''));
      resultCallback(result);
    });
  }
}

function spanRecord(span: ReadableSpan): Record<string, unknown> {
  const context = span.spanContext();
  return {
    traceId: context.traceId,
    spanId: context.spanId,
    parentSpanId: span.parentSpanContext?.spanId,
    name: span.name,
    kind: span.kind,
    attributes: span.attributes,
    status: span.status,
    startTime: span.startTime,
    endTime: span.endTime,
  };
}
