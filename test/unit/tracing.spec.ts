import { describe, expect, it } from '@jest/globals';
import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { clusterTracer } from '../../lib/cluster/tracing.js';

/**
 * The library's tracer: without an SDK every span is the no-op and nothing travels in an
 * envelope; once the application registers an SDK (even after the library loaded) spans record,
 * and a trace context from an envelope becomes the remote parent.
 */
describe('clusterTracer', () => {
  it('without an SDK: no-op spans, nothing to carry', () => {
    const span = clusterTracer.start('ocpp.send Reset', 'client', { 'ocpp.identity': 'CP1' });
    expect(span.carrier()).toBeUndefined();
    expect(span.child('ocpp.cluster.publish', 'producer').carrier()).toBeUndefined();
    expect(span.run(() => 42)).toBe(42);
    span.end(new Error('ignored'));
  });

  it('with an SDK registered later: spans record, and an envelope context is the remote parent', () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    expect(trace.setGlobalTracerProvider(provider)).toBe(true);
    try {
      const remoteTrace = '0af7651916cd43dd8448eb211c80319c';
      const remoteSpan = 'b7ad6b7169203331';
      const command = clusterTracer.start('ocpp.cluster.command Reset', 'consumer', { 'ocpp.hops': undefined }, { traceparent: `00-${remoteTrace}-${remoteSpan}-01` });
      const reply = command.child('ocpp.cluster.reply', 'producer');
      const carried = reply.carrier();
      expect(carried?.traceparent).toMatch(new RegExp(`^00-${remoteTrace}-[0-9a-f]{16}-01$`));
      reply.end();
      command.end(Object.assign(new Error('gone'), { code: 'OCPP_NOT_CONNECTED' }));

      const [replySpan, commandSpan] = exporter.getFinishedSpans();
      expect(commandSpan.spanContext().traceId).toBe(remoteTrace);
      expect(commandSpan.parentSpanContext?.spanId).toBe(remoteSpan);
      expect(replySpan.parentSpanContext?.spanId).toBe(commandSpan.spanContext().spanId);
      expect(carried?.traceparent.split('-')[2]).toBe(replySpan.spanContext().spanId);
      expect(commandSpan.status).toMatchObject({ code: 2, message: 'gone' });
      expect(commandSpan.attributes).toEqual({ 'ocpp.error': 'OCPP_NOT_CONNECTED' });

      // A context that is not W3C starts a new trace instead of failing the command.
      const fresh = clusterTracer.start('ocpp.cluster.command Reset', 'consumer', {}, { traceparent: 'garbage' });
      fresh.end();
      const freshSpan = exporter.getFinishedSpans()[2];
      expect(freshSpan.spanContext().traceId).not.toBe(remoteTrace);
      expect(freshSpan.parentSpanContext).toBeUndefined();
    } finally {
      trace.disable();
    }
  });
});
