import type { WebSocket } from 'ws';
// eslint-disable-next-line no-restricted-imports -- the one cluster → gateway import: the node still builds its gateway until the composition root does (issue 10, item 1)
import { OcppWebSocketGateway, type ConnectionInfo, type UpgradeRequest, type UpgradeVerdict } from '../gateway/ocpp-websocket-gateway.js';
import type { ResolvedOcppClusterOptions } from '../ocpp-cluster.options.js';
import type { Acceptance } from './admission.js';
import type { ClusterLogger } from './logger.js';

/** The gateway as the node holds it, and what its hooks receive (the rest of cluster/ imports them from here). */
export type NodeGateway = OcppWebSocketGateway;
export type { ConnectionInfo, UpgradeRequest, UpgradeVerdict };

/** What the node answers the gateway with. */
export interface GatewayHooks {
  acceptance: () => Acceptance;
  onRejected: (reason: string) => void;
  beforeUpgrade: (request: UpgradeRequest) => Promise<UpgradeVerdict>;
  onConnection: (socket: WebSocket, info: ConnectionInfo) => void;
}

/** The node's WebSocket front door, configured from the module's options. */
export function createGateway(options: ResolvedOcppClusterOptions, hooks: GatewayHooks, logger: ClusterLogger): OcppWebSocketGateway {
  return new OcppWebSocketGateway({
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
    isAcceptingConnections: hooks.acceptance,
    onRejected: hooks.onRejected,
    beforeUpgrade: hooks.beforeUpgrade,
    onConnection: hooks.onConnection,
    logger,
  });
}
