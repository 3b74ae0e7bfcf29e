import type { Server as HttpServer } from 'node:http';
import { HandlerRegistry } from './cluster/handler-registry.js';
import { SILENT_LOGGER, type ClusterLogger } from './cluster/logger.js';
import type { ClusterMetricsSink } from './cluster/metrics-sink.js';
import { OcppClusterNode } from './cluster/ocpp-cluster-node.js';
import type { ConnectionListeners } from './cluster/node-types.js';
import type { EventAdapterInterface } from './cluster/event-adapter.interface.js';
import { OcppWebSocketGateway } from './gateway/ocpp-websocket-gateway.js';
import type { ResolvedOcppClusterOptions } from './ocpp-cluster.options.js';
import { InvalidOptionsError } from './protocol/errors.js';
import type { SchemaValidator } from './protocol/validator.js';

export interface CreateNodeParts {
  /** The module's options after defaults (`resolveOptions(...)`). */
  options: ResolvedOcppClusterOptions;
  adapter: EventAdapterInterface;
  /** Handlers of calls from charge points (default: none, every call is answered NotImplemented). */
  handlers?: HandlerRegistry;
  /** Default: silent. */
  logger?: ClusterLogger;
  /** Schema validation of calls (strict mode), or null. */
  validator?: SchemaValidator | null;
  listeners?: ConnectionListeners;
  metricsSink?: ClusterMetricsSink;
}

/** A node and its front door, as the composition root built them. */
export interface NodeHost {
  readonly node: OcppClusterNode;
  /** The WebSocket gateway that hands this node its charge point sockets. */
  readonly gateway: OcppWebSocketGateway;
  /** Joins the cluster, then opens the gateway (on `httpServer`, or its own port). Returns the own port if any. */
  start(httpServer?: HttpServer): Promise<number | undefined>;
  /** Closes the gateway (no new charge points), then stops the node (its sockets close with 1001). */
  stop(): Promise<void>;
}

/**
 * The framework-free composition root: builds the node, then the gateway in front of it, and
 * wires the one to the other (the gateway asks `acceptanceForUpgrade()` and `beforeUpgrade()`,
 * then hands each socket to `accept()`). The Nest module does the same through its providers.
 */
export function createNode(parts: CreateNodeParts): NodeHost {
  const { options, adapter } = parts;
  const handlers = parts.handlers ?? new HandlerRegistry();
  const logger = parts.logger ?? SILENT_LOGGER;
  const node = new OcppClusterNode(options, adapter, parts.validator ?? null, handlers, logger, parts.listeners, parts.metricsSink);
  const gateway = new OcppWebSocketGateway({
    path: options.path,
    protocols: options.protocols,
    maxIdentityLength: options.maxIdentityLength,
    identityPattern: options.identityPattern,
    authenticate: options.authenticate,
    maxPayload: options.maxPayload,
    perMessageDeflate: options.perMessageDeflate,
    maxConnections: options.maxConnections,
    handshakeTimeoutMs: options.handshakeTimeoutMs,
    maxPendingHandshakes: options.maxPendingHandshakes,
    connectionRateLimit: options.connectionRateLimit,
    isAcceptingConnections: () => node.acceptanceForUpgrade(),
    onRejected: (reason) => node.upgradeRejected(reason),
    beforeUpgrade: (request) => node.beforeUpgrade(request),
    onConnection: (socket, info) => node.accept(socket, info),
    logger,
  });
  let stopping: Promise<void> | null = null;
  return {
    node,
    gateway,
    async start(httpServer?: HttpServer): Promise<number | undefined> {
      if (options.port === undefined && !httpServer) {
        throw new InvalidOptionsError('port', 'no HTTP server to attach to: give a port, or start the node inside a Nest HTTP application');
      }
      await node.join();
      try {
        if (options.port !== undefined) return await gateway.listen(options.port, options.host, options.tls);
        gateway.attach(httpServer!);
        return undefined;
      } catch (error) {
        // A node that cannot take sockets must not hold its id in the cluster.
        await node.stop();
        throw error;
      }
    },
    stop(): Promise<void> {
      stopping ??= gateway.close().then(() => node.stop());
      return stopping;
    },
  };
}
