import { ClusterUnavailableError, InboxFullError, NotConnectedError, OcppClusterError, ProtocolMismatchError } from '../protocol/errors.js';
import type { OcppProtocol } from '../protocol/protocol.js';
import type { CallChecks } from './call-checks.js';
import type { DrainController } from './drain.js';
import type { CommandEnvelope, CommandOutcome } from './envelope.js';
import { inboxOf } from './address.js';
import type { EventAdapterInterface, PresenceRecord } from './event-adapter.interface.js';
import { forwarded, forwardingTarget, mayForward } from './forwarding.js';
import type { CallGate } from './local-call.js';
import type { LocalConnection, LocalRegistry } from './local-registry.js';
import type { ClusterMetricsSink } from './metrics-sink.js';
import { outcomeFromError } from './outcome.js';
import type { OwnerCache } from './owner-cache.js';
import type { ClusterSpan } from './tracing.js';

/** A call as the router needs to see it to choose where it goes. */
export interface RouteRequest {
  protocol: OcppProtocol | undefined;
  action: string;
  payload: Record<string, unknown>;
  deadline: number;
  /** The caller's span (OpenTelemetry): each hop of the call is its child. */
  span?: ClusterSpan;
}

/** Where a call goes: a socket of this node, or the inbox of the node that holds it. */
export type Route = { kind: 'local'; connection: LocalConnection } | { kind: 'remote'; owner: PresenceRecord };

export interface CallRouterDeps {
  nodeId: string;
  adapter: EventAdapterInterface;
  registry: LocalRegistry;
  drain: DrainController;
  owners: OwnerCache;
  checks: CallChecks;
  metricsSink: ClusterMetricsSink;
  /** `deliverWithinMs`: parks a command whose charge point is gone again; true when parked (see ParkedDelivery). */
  parkAgain?: (command: CommandEnvelope, gate: CallGate) => Promise<boolean>;
}

/**
 * The one routing policy of the node. Callers (sendToClient, sendMessage, broadcastBatch) ask
 * `route()`; an owner whose charge point moved asks `forward()`. A call goes to the local socket
 * while it takes calls, else to the remembered owner while its node lives and the request fits
 * its connection, else to the owner presence names (waiting for the new owner of a charge point
 * this node handed over while draining). Whatever fails is refused before anything crosses.
 */
export class CallRouter {
  constructor(private readonly deps: CallRouterDeps) {}

  /** The local socket that takes new calls for `identity` (none once it is being handed over). */
  servingConnection(identity: string): LocalConnection | undefined {
    if (this.deps.drain.isHandedOver(identity)) return undefined;
    return this.deps.registry.get(identity);
  }

  /**
   * While a handshake of `identity` is completing here (its claim already names this node), the
   * wait for its socket, bounded by `deadline`; null when none is. A command for it then reaches
   * the new socket instead of being answered "not connected" (a charge point moving in on a drain).
   */
  handshakeHere(identity: string, deadline: number): Promise<void> | null {
    if (this.deps.drain.isHandedOver(identity) || !this.deps.registry.isHandshaking(identity)) return null;
    return this.deps.registry.handshakesSettled(identity, deadline);
  }

  /** True while a handshake of `identity` is completing here (see handshakeHere). */
  isHandshakingHere(identity: string): boolean {
    return !this.deps.drain.isHandedOver(identity) && this.deps.registry.isHandshaking(identity);
  }

  /**
   * A charge point connecting here right now (the newest connection wins, wherever presence
   * still points): the caller waits for its socket, bounded by the deadline, instead of being
   * told "unavailable" for a handshake that completes a moment later.
   */
  private async afterHandshakeHere(identity: string, deadline: number): Promise<LocalConnection | undefined> {
    const handshake = this.handshakeHere(identity, deadline);
    if (!handshake) return undefined;
    await handshake;
    return this.servingConnection(identity);
  }

  /**
   * The route `route()` would choose, when it is known without I/O (a local socket, or a
   * remembered owner whose node the transport knows alive); null: ask `route()`. Saves the
   * common call the promises and the deadline timer of a route that never waits.
   */
  routeNow(identity: string, request: RouteRequest): Route | null {
    const connection = this.servingConnection(identity);
    if (connection) return { kind: 'local', connection };
    // Connecting here right now: route() waits for that socket.
    if (this.isHandshakingHere(identity)) return null;
    const remembered = this.deps.owners.get(identity);
    if (!remembered || this.deps.adapter.isNodeKnownAlive?.(remembered.nodeId) !== true) return null;
    return this.requestProblem(remembered, request) === null ? { kind: 'remote', owner: remembered } : null;
  }

  async route(identity: string, request: RouteRequest): Promise<Route> {
    const connection = this.servingConnection(identity) ?? (await this.afterHandshakeHere(identity, request.deadline));
    if (connection) return { kind: 'local', connection };
    const remembered = await this.rememberedOwner(identity);
    if (remembered && this.requestProblem(remembered, request) === null) return { kind: 'remote', owner: remembered };
    const owner = await this.afterHandOver(identity, await this.lookupPresence(identity), request.deadline);
    return { kind: 'remote', owner: this.remoteOwner(identity, owner, request) };
  }

  /**
   * The decision once presence was read (a batch reads it for many identities at once): the
   * owner the call goes to, or the error the caller gets. Not for a charge point this node
   * handed over (see `isHandedOverHere`): that one waits in `route()`.
   */
  remoteOwner(identity: string, owner: PresenceRecord | null, request: RouteRequest): PresenceRecord {
    if (!owner || owner.nodeId === this.deps.nodeId) throw this.notConnected(identity, owner);
    const problem = this.requestProblem(owner, request);
    if (problem) throw problem;
    this.deps.owners.remember(owner);
    return owner;
  }

  /** Presence still names this node for a charge point it handed over: its new owner is awaited. */
  isHandedOverHere(identity: string, owner: PresenceRecord | null | undefined): boolean {
    return owner?.nodeId === this.deps.nodeId && this.deps.drain.isHandedOver(identity);
  }

  /**
   * Owner side: a command arrived for a charge point this node no longer serves. It follows the
   * charge point (one hop more, while its deadline allows) or is answered not connected. Null:
   * forwarded, the next node answers the caller.
   */
  async forward(command: CommandEnvelope, gate: CallGate): Promise<CommandOutcome | null> {
    let owner: PresenceRecord | null = null;
    if (mayForward(command)) {
      try {
        owner = await this.deps.adapter.getPresence(command.identity);
      } catch (error) {
        // Not knowing where it is is not "not connected".
        return outcomeFromError(asClusterError(error));
      }
    }
    owner = await this.afterHandOver(command.identity, owner, command.deadline);
    const target = forwardingTarget(command, owner, this.deps.nodeId);
    if (target === null && this.isConnectingHere(command.identity, owner)) return outcomeFromError(this.connectingHere(command.identity));
    if (target === null) {
      // A parked command taken for delivery waits again for the next connection, while its window lasts.
      const parked = command.parked && this.deps.parkAgain ? await this.deps.parkAgain(command, gate).catch(() => false) : false;
      return parked ? null : { status: 'notConnected' };
    }
    // Forwarding is a write of what we read: after a takeover its caller was answered already.
    if (!gate.mayWrite()) return outcomeFromError(gate.refusal());
    try {
      await this.deps.adapter.publish(inboxOf(target), forwarded(command));
      return null;
    } catch (error) {
      // A full inbox refused it: the caller hears that, typed (never sent).
      if (error instanceof InboxFullError) return outcomeFromError(error);
      return { status: 'failed', errorCode: 'OCPP_CLUSTER_UNAVAILABLE', message: `forwarding failed: ${errorMessage(error)}` };
    }
  }

  private async afterHandOver(identity: string, owner: PresenceRecord | null, deadline: number): Promise<PresenceRecord | null> {
    return this.isHandedOverHere(identity, owner) ? this.deps.drain.awaitNewOwner(identity, deadline) : owner;
  }

  /**
   * Not connected, unless the charge point is connecting to this node right now (presence names
   * us before its socket opens), or the transport cannot tell (a missing entry proves nothing then).
   */
  private notConnected(identity: string, owner: PresenceRecord | null): Error {
    if (this.isConnectingHere(identity, owner)) return this.connectingHere(identity);
    const doubt = owner ? null : this.deps.adapter.presenceDoubt?.();
    return doubt ? new ClusterUnavailableError(`cannot tell whether ${identity} is connected: ${doubt}`) : new NotConnectedError(identity);
  }

  private isConnectingHere(identity: string, owner: PresenceRecord | null): boolean {
    return owner?.nodeId === this.deps.nodeId && this.deps.registry.isHandshaking(identity);
  }

  private connectingHere(identity: string): ClusterUnavailableError {
    return new ClusterUnavailableError(`${identity} is connecting to node ${this.deps.nodeId} right now; its socket is not open yet`);
  }

  /** The cached owner of `identity` while it is fresh and its node is alive. */
  private async rememberedOwner(identity: string): Promise<PresenceRecord | undefined> {
    const owner = this.deps.owners.get(identity);
    if (!owner) return undefined;
    if (await this.deps.adapter.isNodeAlive(owner.nodeId).catch(() => false)) return owner;
    this.deps.owners.forget(identity);
    return undefined;
  }

  /**
   * Why `owner`'s connection cannot take the request as it is, or null. For a remembered owner
   * a problem only means the entry may describe an older connection: presence decides then,
   * and the caller's error comes from there.
   */
  private requestProblem(owner: PresenceRecord, { protocol, action, payload }: RouteRequest): Error | null {
    if (protocol && protocol !== owner.protocol) return new ProtocolMismatchError(owner.identity, protocol, owner.protocol);
    return this.deps.checks.requestValidationError(owner.protocol, action, payload);
  }

  private async lookupPresence(identity: string): Promise<PresenceRecord | null> {
    try {
      const owner = await this.deps.adapter.getPresence(identity);
      this.deps.metricsSink.presenceOperation('lookup', 'ok');
      return owner;
    } catch (error) {
      this.deps.metricsSink.presenceOperation('lookup', 'error');
      throw asClusterError(error);
    }
  }
}

export const errorMessage = (error: unknown): string => (error as Error)?.message ?? String(error);

/** Our typed errors as they are; anything else the transport threw means the cluster cannot be reached. */
export function asClusterError(error: unknown): OcppClusterError {
  return error instanceof OcppClusterError ? error : new ClusterUnavailableError(errorMessage(error));
}
