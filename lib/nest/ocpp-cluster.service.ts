import { Inject, Injectable, Logger } from '@nestjs/common';
import type {
  BroadcastOptions,
  BroadcastSummary,
  ChargerInfo,
  ClusterNodeMetrics,
  DrainReport,
  OcppClusterNode,
  SendOptions,
} from '../cluster/ocpp-cluster-node.js';
import { OCPP_CLUSTER_NODE, OCPP_CLUSTER_RESOLVED_OPTIONS } from './ocpp-cluster.constants.js';
import type { ResolvedOcppClusterOptions } from '../ocpp-cluster.options.js';
import { InvalidOptionsError } from '../protocol/errors.js';
import { outboundActionProblem, type OutboundKind } from '../protocol/outbound-actions.js';
import { isOcppProtocol } from '../protocol/protocol.js';
import type { OcppProtocol } from '../protocol/protocol.js';
import type { ActionsOf, CommonActionsOf, CommonRequest, OcppRequest, OcppResponse } from '../protocol/typed-actions.js';
import { SchemaValidator } from '../protocol/validator.js';

type Payload = Record<string, unknown>;

interface CheckedCall {
  protocol?: OcppProtocol;
  action: string;
  payload: Payload;
  options?: SendOptions;
}

/** broadcastBatch: each identity's outcome, with the typed reply when it answered. */
export type TypedBatchOutcome<R = Payload> =
  | { identity: string; status: 'fulfilled'; result: R }
  | { identity: string; status: 'rejected'; error: Error };

/**
 * The public API: send commands to charge points on any node, broadcast, ask who is where.
 * A thin layer over the framework-free `OcppClusterNode`.
 *
 * `P` is the set of configured protocols (inject `OcppClusterService<'ocpp1.6'>` in a 1.6-only
 * app): calls name an action of the chosen version that the CSMS sends, with its payload type,
 * and resolve with its reply type. Without a version only actions every protocol of `P` defines
 * are offered. `sendRaw` is the untyped escape hatch. At runtime an action the protocol does not
 * define is refused before anything is sent (UnknownActionError).
 */
@Injectable()
export class OcppClusterService<P extends OcppProtocol = OcppProtocol> {
  private readonly logger = new Logger('OcppCluster');

  constructor(
    @Inject(OCPP_CLUSTER_NODE) private readonly node: OcppClusterNode,
    @Inject(OCPP_CLUSTER_RESOLVED_OPTIONS) private readonly options: ResolvedOcppClusterOptions,
    @Inject(SchemaValidator) private readonly validator: SchemaValidator,
  ) {}

  get nodeId(): string {
    return this.node.nodeId;
  }

  /**
   * The charge point's reply. Rejects with NotConnectedError, OcppTimeoutError, OcppCallError
   * (its CALLERROR), OcppValidationError, ProtocolMismatchError or UnknownActionError.
   */
  sendToClient<Q extends P, A extends ActionsOf<Q, 'toCharger'>>(
    identity: string,
    protocol: Q,
    action: A,
    payload: OcppRequest<Q, A>,
    options?: SendOptions,
  ): Promise<OcppResponse<Q, A>>;
  sendToClient<A extends CommonActionsOf<P, 'toCharger'>>(
    identity: string,
    action: A,
    payload: CommonRequest<P, A>,
    options?: SendOptions,
  ): Promise<OcppResponse<P, A>>;
  async sendToClient(identity: string, ...rest: unknown[]): Promise<unknown> {
    const call = this.parseCall(rest, 'call');
    return this.node.sendToClient(identity, call.protocol, call.action, call.payload, call.options);
  }

  /** Like sendToClient, but logs failures and resolves `undefined` instead of throwing. */
  safeSendToClient<Q extends P, A extends ActionsOf<Q, 'toCharger'>>(
    identity: string,
    protocol: Q,
    action: A,
    payload: OcppRequest<Q, A>,
    options?: SendOptions,
  ): Promise<OcppResponse<Q, A> | undefined>;
  safeSendToClient<A extends CommonActionsOf<P, 'toCharger'>>(
    identity: string,
    action: A,
    payload: CommonRequest<P, A>,
    options?: SendOptions,
  ): Promise<OcppResponse<P, A> | undefined>;
  async safeSendToClient(identity: string, ...rest: unknown[]): Promise<unknown> {
    try {
      const call = this.parseCall(rest, 'call');
      return await this.node.sendToClient(identity, call.protocol, call.action, call.payload, call.options);
    } catch (error) {
      this.logger.warn(`safeSendToClient(${JSON.stringify(identity)}) failed: ${(error as Error)?.message ?? String(error)}`);
      return undefined;
    }
  }

  /**
   * The escape hatch: any action the protocol defines (or a vendor action declared with a custom
   * validator), any payload, an untyped reply. `protocol` undefined: whatever the charger speaks.
   * In strict mode the payload is still validated, and an undeclared action is still refused.
   */
  async sendRaw(
    identity: string,
    protocol: P | undefined,
    action: string,
    payload: Payload,
    options?: SendOptions,
  ): Promise<Payload> {
    const call = this.checkedCall(protocol, action, payload, options, 'raw');
    return this.node.sendToClient(identity, call.protocol, call.action, call.payload, call.options);
  }

  /** OCPP 2.1 SEND to one charge point on any node: never answered by the charger. */
  async sendMessage<Q extends P, A extends ActionsOf<Q, 'send'>>(
    identity: string,
    protocol: Q,
    action: A,
    payload: OcppRequest<Q, A>,
    options?: SendOptions,
  ): Promise<void> {
    const call = this.checkedCall(protocol, action, payload, options, 'send');
    return this.node.sendMessage(identity, call.action, call.payload, call.options);
  }

  /** Every connected charge point in the cluster gets the call (with a protocol: only those speaking it). */
  broadcast<Q extends P, A extends ActionsOf<Q, 'toCharger'>>(
    protocol: Q,
    action: A,
    payload: OcppRequest<Q, A>,
    options?: SendOptions,
  ): Promise<BroadcastSummary>;
  broadcast<A extends CommonActionsOf<P, 'toCharger'>>(action: A, payload: CommonRequest<P, A>, options?: SendOptions): Promise<BroadcastSummary>;
  async broadcast(...rest: unknown[]): Promise<BroadcastSummary> {
    const call = this.parseCall(rest, 'call');
    const options: BroadcastOptions = { ...call.options, protocol: call.protocol };
    return this.node.broadcast(call.action, call.payload, options);
  }

  /** The call to each identity through its owner; every identity's outcome comes back. */
  async broadcastBatch<A extends CommonActionsOf<P, 'toCharger'>>(
    identities: readonly string[],
    action: A,
    payload: CommonRequest<P, A>,
    options?: SendOptions,
  ): Promise<TypedBatchOutcome<OcppResponse<P, A>>[]> {
    const call = this.checkedCall(undefined, action, payload, options, 'call');
    const outcomes = await this.node.broadcastBatch(identities, call.action, call.payload, call.options);
    return outcomes as TypedBatchOutcome<OcppResponse<P, A>>[];
  }

  /** `broadcast` without types, for an action known only at run time (checked like sendRaw). */
  async broadcastRaw(protocol: P | undefined, action: string, payload: Payload, options?: SendOptions): Promise<BroadcastSummary> {
    const call = this.checkedCall(protocol, action, payload, options, 'raw');
    return this.node.broadcast(call.action, call.payload, { ...call.options, protocol: call.protocol });
  }

  /** `broadcastBatch` without types, for an action known only at run time (checked like sendRaw). */
  async broadcastBatchRaw(identities: readonly string[], action: string, payload: Payload, options?: SendOptions): Promise<TypedBatchOutcome[]> {
    const call = this.checkedCall(undefined, action, payload, options, 'raw');
    return this.node.broadcastBatch(identities, call.action, call.payload, call.options);
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

  private parseCall(rest: unknown[], kind: OutboundKind): CheckedCall {
    const call = parseCallArguments(rest);
    return this.checkedCall(call.protocol, call.action, call.payload, call.options, kind);
  }

  /** Refuses, before any I/O, what can never be sent: bad arguments, and actions the protocol does not define. */
  private checkedCall(protocol: OcppProtocol | undefined, action: unknown, payload: unknown, options: SendOptions | undefined, kind: OutboundKind): CheckedCall {
    if (typeof action !== 'string' || action.length === 0) {
      throw new InvalidOptionsError('action', 'must be a non-empty string');
    }
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
      throw new InvalidOptionsError('payload', 'must be a JSON object');
    }
    const problem = outboundActionProblem(this.options.protocols, protocol, action, kind, (p, a) => this.validator.hasCustom(p, a));
    if (problem) throw problem;
    return { protocol, action, payload: payload as Payload, options };
  }
}

function parseCallArguments(rest: unknown[]): {
  protocol?: OcppProtocol;
  action: unknown;
  payload: unknown;
  options?: SendOptions;
} {
  const [first, second, third, fourth] = rest;
  return isOcppProtocol(first)
    ? { protocol: first, action: second, payload: third, options: fourth as SendOptions | undefined }
    : { protocol: undefined, action: first, payload: second, options: third as SendOptions | undefined };
}
