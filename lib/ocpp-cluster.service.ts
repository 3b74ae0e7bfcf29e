import { Inject, Injectable, Logger } from '@nestjs/common';
import type {
  BatchOutcome,
  BroadcastOptions,
  BroadcastSummary,
  ChargerInfo,
  ClusterNodeMetrics,
  DrainReport,
  OcppClusterNode,
  SendOptions,
} from './cluster/ocpp-cluster-node.js';
import { OCPP_CLUSTER_NODE } from './ocpp-cluster.constants.js';
import { InvalidOptionsError } from './protocol/errors.js';
import { isOcppProtocol } from './protocol/protocol.js';
import type { OcppProtocol } from './protocol/protocol.js';

type Payload = Record<string, unknown>;

/**
 * The public API: send commands to charge points on any node, broadcast, ask who is where.
 * A thin layer over the framework-free `OcppClusterNode`.
 */
@Injectable()
export class OcppClusterService {
  private readonly logger = new Logger('OcppCluster');

  constructor(@Inject(OCPP_CLUSTER_NODE) private readonly node: OcppClusterNode) {}

  get nodeId(): string {
    return this.node.nodeId;
  }

  /**
   * The charge point's reply. Rejects with NotConnectedError, OcppTimeoutError, OcppCallError
   * (its CALLERROR), OcppValidationError or ProtocolMismatchError.
   */
  sendToClient(identity: string, action: string, payload: Payload, options?: SendOptions): Promise<Payload>;
  sendToClient(identity: string, protocol: OcppProtocol, action: string, payload: Payload, options?: SendOptions): Promise<Payload>;
  async sendToClient(identity: string, ...rest: unknown[]): Promise<Payload> {
    const call = parseCallArguments(rest);
    return this.node.sendToClient(identity, call.protocol, call.action, call.payload, call.options);
  }

  /** Like sendToClient, but logs failures and resolves `undefined` instead of throwing. */
  safeSendToClient(identity: string, action: string, payload: Payload, options?: SendOptions): Promise<Payload | undefined>;
  safeSendToClient(
    identity: string,
    protocol: OcppProtocol,
    action: string,
    payload: Payload,
    options?: SendOptions,
  ): Promise<Payload | undefined>;
  async safeSendToClient(identity: string, ...rest: unknown[]): Promise<Payload | undefined> {
    try {
      const call = parseCallArguments(rest);
      return await this.node.sendToClient(identity, call.protocol, call.action, call.payload, call.options);
    } catch (error) {
      this.logger.warn(`safeSendToClient(${JSON.stringify(identity)}) failed: ${(error as Error)?.message ?? String(error)}`);
      return undefined;
    }
  }

  /** OCPP 2.1 SEND to one charge point on any node: never answered by the charger. */
  sendMessage(identity: string, action: string, payload: Payload, options?: SendOptions): Promise<void> {
    return this.node.sendMessage(identity, action, payload, options);
  }

  /** Every connected charge point in the cluster gets the call. */
  broadcast(action: string, payload: Payload, options?: BroadcastOptions): Promise<BroadcastSummary> {
    return this.node.broadcast(action, payload, options);
  }

  /** The call to each identity through its owner; every identity's outcome comes back. */
  broadcastBatch(identities: readonly string[], action: string, payload: Payload, options?: SendOptions): Promise<BatchOutcome[]> {
    return this.node.broadcastBatch(identities, action, payload, options);
  }

  isConnected(identity: string): Promise<boolean> {
    return this.node.isConnected(identity);
  }

  getPresence(identity: string): Promise<ChargerInfo | null> {
    return this.node.getPresence(identity);
  }

  /** Charge points connected to this node. */
  getLocalChargers(): ChargerInfo[] {
    return this.node.listLocal();
  }

  /** Charge points connected anywhere in the cluster. */
  getChargers(): Promise<ChargerInfo[]> {
    return this.node.listAll();
  }

  metrics(): Promise<ClusterNodeMetrics> {
    return this.node.metrics();
  }

  /**
   * Hands this node's charge points to the other nodes (readiness fails, upgrades get 503,
   * sockets close with 1012 spread over `windowMs`, calls for them follow them) and leaves the
   * cluster. Nest shutdown on a signal does the same.
   */
  drain(options?: { windowMs?: number }): Promise<DrainReport> {
    return this.node.drain(options);
  }
}

function parseCallArguments(rest: unknown[]): {
  protocol?: OcppProtocol;
  action: string;
  payload: Payload;
  options?: SendOptions;
} {
  const [first, second, third, fourth] = rest;
  const call = isOcppProtocol(first)
    ? { protocol: first, action: second, payload: third, options: fourth }
    : { protocol: undefined, action: first, payload: second, options: third };
  if (typeof call.action !== 'string' || call.action.length === 0) {
    throw new InvalidOptionsError('action', 'must be a non-empty string');
  }
  if (call.payload === null || typeof call.payload !== 'object' || Array.isArray(call.payload)) {
    throw new InvalidOptionsError('payload', 'must be a JSON object');
  }
  return call as { protocol?: OcppProtocol; action: string; payload: Payload; options?: SendOptions };
}
