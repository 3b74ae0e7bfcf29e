import { createRequire } from 'node:module';
import type * as OtelApi from '@opentelemetry/api';

/**
 * OpenTelemetry spans for calls and cluster hops, with the W3C trace context carried in the
 * cluster envelope. `@opentelemetry/api` is an optional peer: loaded once, synchronously, if
 * installed; without it every span is the shared no-op and envelopes carry nothing. With the API
 * but no SDK registered, spans do not record and carry nothing either.
 */

/** W3C trace context as it travels in an envelope (the `traceparent` / `tracestate` header values). */
export interface TraceCarrier {
  traceparent: string;
  tracestate?: string;
}

export type SpanKindName = 'internal' | 'server' | 'client' | 'producer' | 'consumer';

export type SpanAttributes = Record<string, string | number | boolean | undefined>;

export interface ClusterSpan {
  /** This span's context for an envelope; undefined when nothing records (no API, no SDK). */
  carrier(): TraceCarrier | undefined;
  child(name: string, kind: SpanKindName, attributes?: SpanAttributes): ClusterSpan;
  setAttribute(key: string, value: string | number | boolean): void;
  /** Runs `fn` with this span as the active context (application code, e.g. handlers, sees it as parent). */
  run<T>(fn: () => T): T;
  /** Ends the span, with an error status when `error` is given. */
  end(error?: unknown): void;
}

export interface ClusterTracer {
  /**
   * A span whose parent is `parent` (a context from an envelope), else the active context (the
   * application's span around the call, e.g. its HTTP handler's).
   */
  start(name: string, kind: SpanKindName, attributes?: SpanAttributes, parent?: TraceCarrier): ClusterSpan;
}

const NOOP_SPAN: ClusterSpan = {
  carrier: () => undefined,
  child: () => NOOP_SPAN,
  setAttribute: () => undefined,
  run: (fn) => fn(),
  end: () => undefined,
};

const NOOP_TRACER: ClusterTracer = { start: () => NOOP_SPAN };

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

function loadApi(): typeof OtelApi | null {
  try {
    return createRequire(import.meta.url)('@opentelemetry/api') as typeof OtelApi;
  } catch {
    return null;
  }
}

class OtelSpan implements ClusterSpan {
  constructor(
    private readonly api: typeof OtelApi,
    private readonly tracer: OtelApi.Tracer,
    private readonly span: OtelApi.Span,
    private readonly context: OtelApi.Context,
  ) {}

  carrier(): TraceCarrier | undefined {
    const spanContext = this.span.spanContext();
    if (!this.api.isSpanContextValid(spanContext)) return undefined;
    const flags = (spanContext.traceFlags & 0xff).toString(16).padStart(2, '0');
    const traceparent = `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`;
    const tracestate = spanContext.traceState?.serialize();
    return tracestate ? { traceparent, tracestate } : { traceparent };
  }

  child(name: string, kind: SpanKindName, attributes?: SpanAttributes): ClusterSpan {
    return startSpan(this.api, this.tracer, name, kind, attributes, this.context);
  }

  setAttribute(key: string, value: string | number | boolean): void {
    this.span.setAttribute(key, value);
  }

  run<T>(fn: () => T): T {
    return this.api.context.with(this.context, fn);
  }

  end(error?: unknown): void {
    if (error !== undefined) {
      const message = (error as Error)?.message ?? String(error);
      this.span.setStatus({ code: this.api.SpanStatusCode.ERROR, message });
      const code = (error as { code?: unknown })?.code;
      this.span.setAttribute('ocpp.error', typeof code === 'string' ? code : ((error as Error)?.name ?? 'Error'));
    }
    this.span.end();
  }
}

const KINDS: Record<SpanKindName, keyof typeof OtelApi.SpanKind> = {
  internal: 'INTERNAL',
  server: 'SERVER',
  client: 'CLIENT',
  producer: 'PRODUCER',
  consumer: 'CONSUMER',
};

function startSpan(
  api: typeof OtelApi,
  tracer: OtelApi.Tracer,
  name: string,
  kind: SpanKindName,
  attributes: SpanAttributes | undefined,
  parent: OtelApi.Context,
): ClusterSpan {
  const span = tracer.startSpan(name, { kind: api.SpanKind[KINDS[kind]], attributes: definedOnly(attributes) }, parent);
  // Not recording (no SDK, or sampled out): nothing to carry, nothing to end.
  if (!span.isRecording() && !api.isSpanContextValid(span.spanContext())) return NOOP_SPAN;
  return new OtelSpan(api, tracer, span, api.trace.setSpan(parent, span));
}

function definedOnly(attributes: SpanAttributes | undefined): OtelApi.Attributes | undefined {
  if (!attributes) return undefined;
  const defined: OtelApi.Attributes = {};
  for (const [key, value] of Object.entries(attributes)) if (value !== undefined) defined[key] = value;
  return defined;
}

/** The remote parent of an envelope's trace context (an unparsable one starts a new trace). */
function contextOf(api: typeof OtelApi, carrier: TraceCarrier): OtelApi.Context {
  const match = typeof carrier?.traceparent === 'string' ? TRACEPARENT.exec(carrier.traceparent) : null;
  if (!match) return api.ROOT_CONTEXT;
  const spanContext: OtelApi.SpanContext = {
    traceId: match[1],
    spanId: match[2],
    traceFlags: parseInt(match[3], 16),
    isRemote: true,
    traceState: typeof carrier.tracestate === 'string' ? api.createTraceState(carrier.tracestate) : undefined,
  };
  return api.isSpanContextValid(spanContext) ? api.trace.setSpanContext(api.ROOT_CONTEXT, spanContext) : api.ROOT_CONTEXT;
}

/**
 * Whether a tracer provider (an SDK) is registered with the API. Once seen, assumed for good (a
 * provider taken away again only costs the full path).
 */
let sdkSeen = false;
function sdkRegistered(api: typeof OtelApi): boolean {
  if (sdkSeen) return true;
  const provider = api.trace.getTracerProvider();
  // Another API copy's global provider, or a provider that is not the API's proxy: assume one.
  sdkSeen = !(provider instanceof api.ProxyTracerProvider) || provider.getDelegateTracer('nestjs-ocpp-cluster') !== undefined;
  return sdkSeen;
}

function createTracer(): ClusterTracer {
  const api = loadApi();
  if (!api) return NOOP_TRACER;
  // A proxy: it follows an SDK registered after this module loaded.
  const tracer = api.trace.getTracer('nestjs-ocpp-cluster');
  return {
    start: (name, kind, attributes, parent) => {
      const context = parent ? contextOf(api, parent) : api.context.active();
      // No SDK and no trace to continue: the API would hand out a span that records and carries
      // nothing; skip building it (and its attributes) on every call's path.
      if (api.trace.getSpanContext(context) === undefined && !sdkRegistered(api)) return NOOP_SPAN;
      return startSpan(api, tracer, name, kind, attributes, context);
    },
  };
}

/** The process's tracer: OpenTelemetry when `@opentelemetry/api` is installed, else no-op. */
export const clusterTracer: ClusterTracer = createTracer();
