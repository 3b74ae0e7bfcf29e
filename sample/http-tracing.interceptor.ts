import { Injectable } from '@nestjs/common';
import type { CallHandler, ExecutionContext, NestInterceptor } from '@nestjs/common';
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { Observable } from 'rxjs';

const tracer = trace.getTracer('ocpp-sample-http');

/**
 * A SERVER span per HTTP request, continuing the caller's `traceparent` header: the library's
 * spans for the command (and every node it crosses) become its children. Only installed when
 * the sample traces (sample/tracing.ts).
 */
@Injectable()
export class HttpTracingInterceptor implements NestInterceptor {
  intercept(executionContext: ExecutionContext, next: CallHandler): Observable<unknown> {
    const http = executionContext.switchToHttp();
    const request = http.getRequest<{ method: string; path: string; headers: Record<string, unknown> }>();
    const response = http.getResponse<{ statusCode: number }>();
    const parent = propagation.extract(context.active(), request.headers);
    const span = tracer.startSpan(`${request.method} ${request.path}`, { kind: SpanKind.SERVER, attributes: { 'http.request.method': request.method, 'url.path': request.path } }, parent);
    const active = trace.setSpan(parent, span);
    const end = (error?: unknown): void => {
      // The exception filter sets the status after us: the error's own status, when it has one.
      const status = (error as { getStatus?: () => number })?.getStatus?.() ?? (error ? 500 : response.statusCode);
      span.setAttribute('http.response.status_code', status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    };
    // Subscribed inside the span's context, so the handler's awaits (and the library's spans) inherit it.
    return new Observable((subscriber) =>
      context.with(active, () =>
        next.handle().subscribe({
          next: (value) => subscriber.next(value),
          error: (error) => {
            end(error);
            subscriber.error(error);
          },
          complete: () => {
            end();
            subscriber.complete();
          },
        }),
      ),
    );
  }
}
