import { OcppRpcError } from '../protocol/errors.js';
import type { OcppProtocol } from '../protocol/protocol.js';
import type { InboundCall } from '../protocol/rpc-session.js';
import type { HandlerRegistry, OcppContext } from './handler-registry.js';
import type { ClusterLogger } from './logger.js';
import type { NodeMetrics } from './node-metrics.js';
import { clusterTracer } from './tracing.js';

/** What a connection's handlers keep of its upgrade. */
export interface ConnectionContext {
  identity: string;
  protocol: OcppProtocol;
  session: unknown;
  remoteAddress?: string;
}

/** CALLs and SENDs from charge points to the application's handlers, counted. */
export class InboundHandlers {
  constructor(
    private readonly nodeId: string,
    private readonly handlers: HandlerRegistry,
    private readonly metrics: NodeMetrics,
    private readonly logger: ClusterLogger,
  ) {}

  async call(call: InboundCall, info: ConnectionContext): Promise<Record<string, unknown>> {
    this.metrics.counters.received++;
    const label = this.metrics.actionLabel(call.action);
    // The handler runs inside the span: the application's own spans become its children.
    // A plain literal: spreading nested ones (the former style) cost far more than the rest of a span.
    const span = clusterTracer.start(`ocpp.handle ${call.action}`, 'server', {
      'ocpp.identity': info.identity,
      'ocpp.action': call.action,
      'ocpp.protocol': info.protocol,
      'ocpp.node': this.nodeId,
      'ocpp.message_id': call.id,
    });
    try {
      const reply = await span.run(() => this.handlers.dispatch(call.payload, this.context(info, call.action, call.id)));
      this.metrics.sink.inboundCall(info.protocol, label, 'ok');
      span.end();
      return reply;
    } catch (error) {
      const code = error instanceof OcppRpcError ? error.errorCode : 'InternalError';
      this.metrics.sink.inboundCall(info.protocol, label, code);
      span.end(error);
      throw error;
    }
  }

  /** An OCPP 2.1 SEND: nobody answers it, so a failing handler is only logged. */
  send(message: InboundCall, info: ConnectionContext): void {
    this.metrics.counters.received++;
    const handler = this.handlers.find(message.action, info.protocol);
    if (!handler) return;
    Promise.resolve()
      .then(() => handler(message.payload, this.context(info, message.action, message.id)))
      .catch((error) => this.logger.warn(`SEND handler for ${message.action} failed: ${String(error)}`));
  }

  private context(info: ConnectionContext, action: string, messageId: string): OcppContext {
    return {
      identity: info.identity,
      protocol: info.protocol,
      action,
      messageId,
      session: info.session,
      nodeId: this.nodeId,
      remoteAddress: info.remoteAddress,
    };
  }
}
