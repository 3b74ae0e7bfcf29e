import type { WebSocket } from 'ws';
import type { AnsweredCalls } from '../protocol/answered-calls.js';
import { frameObserver } from '../protocol/frame-log.js';
import { RpcSession } from '../protocol/rpc-session.js';
import type { SchemaValidator } from '../protocol/validator.js';
import type { NodeOptions } from './node-options.js';
import type { Admission } from './admission.js';
import { errorMessage } from './call-router.js';
import type { DrainController } from './drain.js';
import type { LeaseGuard } from './lease-guard.js';
import type { EvictEnvelope } from './envelope.js';
import { inboxOf } from './address.js';
import type { EventAdapterInterface, PresenceClaim, PresenceRecord, PresenceRestore } from './event-adapter.interface.js';
import type { ConnectionContext, InboundHandlers } from './inbound-handlers.js';
import type { LocalConnection, LocalRegistry } from './local-registry.js';
import type { ConnectionInfo, UpgradeRequest, UpgradeVerdict } from '../protocol/handshake.js';
import type { ClusterLogger } from './logger.js';
import type { NodeMetrics } from './node-metrics.js';
import type { ConnectionListeners } from './node-types.js';
import { chargerInfoOf } from './presence-view.js';

/** What the claim before the upgrade hands to the connection (claim null: accepted unclaimed). */
interface PresenceTicket {
  claim: PresenceClaim | null;
  connectedAt: number;
  /** The lease incarnation the claim was made in (see LeaseGuard). */
  incarnation: number;
}

export interface ConnectionsDeps {
  nodeId: string;
  adapter: EventAdapterInterface;
  registry: LocalRegistry;
  options: NodeOptions;
  validator: SchemaValidator | null;
  answeredCalls: AnsweredCalls;
  inbound: InboundHandlers;
  listeners: ConnectionListeners;
  admission: Admission;
  lease: LeaseGuard;
  drain: DrainController;
  metrics: NodeMetrics;
  logger: ClusterLogger;
  /** The charge point takes calls here now: deliver what was parked for it (`deliverWithinMs`). */
  onServing: (identity: string) => void;
}

/**
 * Charge point sockets on this node: the presence claim before the upgrade, the session once
 * it opened, evicting older sockets of the same charge point (here and elsewhere), and presence
 * removal when it closes.
 */
export class Connections {
  private readonly presenceRemovals = new Set<Promise<unknown>>();

  constructor(private readonly deps: ConnectionsDeps) {}

  /**
   * Claims the identity before the handshake completes, so that epochs follow handshake order:
   * a charge point that saw its socket open here and then connects elsewhere always ends up
   * with the newer claim there. When the claim fails (Redis unreachable or refusing writes) the
   * upgrade gets 503 like any upgrade while the transport is down; with
   * `refuseUpgradesWhileTransportDown: false` it is accepted unclaimed and the transport
   * registers it as soon as it can (see RedisAdapter: failed claims are retried).
   */
  async claimBeforeUpgrade(request: UpgradeRequest): Promise<UpgradeVerdict> {
    const { adapter, metrics, options } = this.deps;
    const connectedAt = Date.now();
    const incarnation = this.deps.lease.incarnation;
    // From before the claim is sent: a presence read may see it before its answer comes back.
    this.deps.registry.beginHandshake(request.identity);
    try {
      const claim = await adapter.setPresence(request.identity, request.protocol, connectedAt);
      metrics.sink.presenceOperation('claim', 'ok');
      const ticket: PresenceTicket = { claim, connectedAt, incarnation };
      const release = () => {
        this.deps.registry.endHandshake(request.identity);
        this.releaseClaim(claim);
      };
      return { accept: true, ticket, release };
    } catch (error) {
      this.deps.registry.endHandshake(request.identity);
      metrics.sink.presenceOperation('claim', 'error');
      if (options.refuseUpgradesWhileTransportDown) {
        const refusal = { status: 503, reason: `presence claim failed: ${errorMessage(error)}` };
        this.deps.admission.noteRefusal(refusal);
        return { accept: false, ...refusal };
      }
      this.deps.logger.warn(`presence claim for ${request.identity} failed: ${errorMessage(error)}; accepted unclaimed, registered once the transport can`);
      const ticket: PresenceTicket = { claim: null, connectedAt, incarnation };
      return { accept: true, ticket };
    }
  }

  onConnection(socket: WebSocket, connectionInfo: ConnectionInfo): void {
    const { registry, options, metrics, logger, inbound, nodeId } = this.deps;
    // Only what the socket's lifetime needs: keeping the upgrade request alive would hold its
    // headers in memory for every connection.
    const info: ConnectionContext = {
      identity: connectionInfo.identity,
      protocol: connectionInfo.protocol,
      session: connectionInfo.session,
      remoteAddress: connectionInfo.remoteAddress,
    };
    const ticket = connectionInfo.ticket as PresenceTicket | undefined;
    const claim = ticket?.claim ?? null;
    if (claim) registry.endHandshake(info.identity);
    if (this.claimedBeforeFence(ticket)) {
      // The node was taken over while this handshake waited for its claim: closeAll() did not
      // see this socket, and a fenced node serves nothing; the claim may even have landed after
      // the survivor cleared our entries. The charge point reconnects and claims afresh.
      logger.log(`${info.identity} finished its handshake after this node was taken over; closing it (1012) so it reconnects`);
      if (claim) this.releaseClaim(claim);
      socket.close(1012, 'service restart');
      return;
    }
    const epoch = claim?.record.epoch ?? 0;
    const current = registry.get(info.identity);
    if (current && epoch > 0 && current.epoch > epoch) {
      // A later handshake of this charge point claimed a newer epoch and is already here.
      socket.close(1000, 'replaced by a newer connection');
      return;
    }
    const connection: LocalConnection = {
      identity: info.identity,
      protocol: info.protocol,
      epoch,
      connectedAt: ticket?.connectedAt ?? Date.now(),
      session: info.session,
      remoteAddress: info.remoteAddress,
      rpc: undefined as unknown as RpcSession,
    };
    connection.rpc = new RpcSession({
      identity: info.identity,
      protocol: info.protocol,
      socket,
      callTimeoutMs: options.callTimeoutMs,
      maxQueueSize: options.maxQueueSize,
      pingIntervalMs: options.pingIntervalMs,
      maxPayload: options.maxPayload,
      validator: this.deps.validator,
      rateLimit: options.rateLimit === false ? null : options.rateLimit,
      answeredCalls: this.deps.answeredCalls,
      onFrame: options.frameLog === undefined ? null : frameObserver(options.frameLog, { identity: info.identity, protocol: info.protocol, nodeId }, logger),
      onCall: (call) => inbound.call(call, info),
      onSend: (message) => inbound.send(message, info),
      onClose: (code, reason) => this.onDisconnected(connection, code, reason),
      onProtocolProblem: () => {
        metrics.counters.badFrames++;
        metrics.sink.badFrame();
      },
      logger,
    });

    metrics.sink.connectionOpened(info.protocol);
    const replaced = registry.set(connection);
    if (replaced) {
      logger.log(`${info.identity} connected again; closing its previous socket`);
      void replaced.rpc.close(1000, 'replaced by a newer connection');
    }
    const previous = claim?.previous;
    if (previous && previous.nodeId !== nodeId) this.evictElsewhere(connection.identity, previous);
    this.deps.onServing(connection.identity);
    // Without a hook, no promise chain per connection (it showed in reconnect storm profiles).
    const onConnected = this.deps.listeners.onConnected;
    if (!onConnected) return;
    void Promise.resolve()
      .then(() => onConnected(chargerInfoOf(connection, nodeId), connection.session))
      .catch((error) => logger.warn(`connect hook failed for ${info.identity}: ${String(error)}`));
  }

  /** True when the lease was fenced or lost since this socket's claim (or is now). */
  private claimedBeforeFence(ticket: PresenceTicket | undefined): boolean {
    const { lease } = this.deps;
    if (lease.state === 'fenced' || lease.state === 'lost') return true;
    return ticket !== undefined && ticket.incarnation !== lease.incarnation;
  }

  /** Another node took the charge point over with a newer claim: close our socket if it is older. */
  async onEvict(message: EvictEnvelope): Promise<void> {
    const connection = this.deps.registry.get(message.identity);
    // Sockets are registered with the epoch they claimed before their handshake completed.
    if (!connection || connection.epoch > message.epoch) return;
    this.deps.logger.log(`${message.identity} reconnected on ${message.newOwner}; closing the stale socket here`);
    this.deps.registry.deleteIf(connection);
    await connection.rpc.close(1000, 'replaced by a newer connection');
  }

  /**
   * What the transport's re-registration found (see PresenceRestore): this node keeps its
   * sockets' epochs and closes or evicts what lost. False when the socket registered is gone.
   */
  onPresenceRestored(restore: PresenceRestore): boolean {
    switch (restore.kind) {
      case 'registered': {
        const connection = this.deps.registry.get(restore.identity);
        if (!connection) return false;
        if (connection.epoch === 0) connection.epoch = restore.epoch;
        return true;
      }
      case 'superseded':
        void this.onEvict({ kind: 'evict', identity: restore.identity, epoch: restore.epoch, newOwner: restore.newOwner });
        return true;
      case 'displaced':
        this.evictElsewhere(restore.identity, restore.previous);
        return true;
    }
  }

  /** Closes every socket (the node stops, or lost its authority). */
  closeAll(code: number, reason: string): Promise<void> {
    const closing = [...this.deps.registry.values()].map((connection) => connection.rpc.close(code, reason).catch(() => undefined));
    return Promise.all(closing).then(() => undefined);
  }

  /** Resolves once every presence removal started so far settled. */
  removalsSettled(): Promise<unknown> {
    return Promise.all(this.presenceRemovals);
  }

  /** Tells the node that held the identity before our claim to close its (older) socket. */
  private evictElsewhere(identity: string, previous: PresenceRecord): void {
    this.deps.adapter
      .publish(inboxOf(previous.nodeId), { kind: 'evict', identity, epoch: previous.epoch, newOwner: this.deps.nodeId })
      .catch((error) => this.deps.logger.warn(`telling ${previous.nodeId} to close its socket of ${identity} failed: ${errorMessage(error)}`));
  }

  private onDisconnected(connection: LocalConnection, code: number, reason: string): void {
    const wasCurrent = this.deps.registry.deleteIf(connection);
    this.deps.metrics.sink.connectionClosed(connection.protocol);
    // Drained sockets keep pointing here until they reconnect elsewhere, so commands for them
    // come to us and wait for the new owner instead of failing as not connected.
    const handedOver = this.deps.drain.isHandedOver(connection.identity);
    // Epoch 0 (accepted unclaimed): the transport knows the epoch it registered it under, if any.
    if ((connection.epoch > 0 || wasCurrent) && !handedOver) this.removePresence(connection.identity, connection.epoch);
    // A socket replaced by a newer connection of the same charge point is not a disconnect.
    const onDisconnected = this.deps.listeners.onDisconnected;
    if (!wasCurrent || !onDisconnected) return;
    void Promise.resolve()
      .then(() => onDisconnected({ ...chargerInfoOf(connection, this.deps.nodeId), code, reason }, connection.session))
      .catch((error) => this.deps.logger.warn(`disconnect hook failed for ${connection.identity}: ${String(error)}`));
  }

  /**
   * The handshake of this claim was given up before its socket opened. Its client may already be
   * connected elsewhere (a handshake timeout on a busy node, then another node): the owner the
   * claim displaced gets the identity back instead of losing its entry.
   */
  private releaseClaim(claim: PresenceClaim): void {
    const { adapter } = this.deps;
    const { identity, epoch } = claim.record;
    this.trackRemoval(identity, adapter.releaseClaim ? adapter.releaseClaim(claim) : adapter.removePresence(identity, epoch));
  }

  /** Removes our entry if (node, epoch) still own it; stop() waits for these. */
  private removePresence(identity: string, epoch: number): void {
    this.trackRemoval(identity, this.deps.adapter.removePresence(identity, epoch));
  }

  private trackRemoval(identity: string, pending: Promise<boolean>): void {
    const removal = pending
      .then(() => this.deps.metrics.sink.presenceOperation('remove', 'ok'))
      .catch((error) => {
        this.deps.metrics.sink.presenceOperation('remove', 'error');
        this.deps.logger.warn(`presence removal for ${identity} failed: ${String(error)}`);
      })
      .finally(() => this.presenceRemovals.delete(removal));
    this.presenceRemovals.add(removal);
  }
}
