import type { WebSocket } from 'ws';
import { NodeShuttingDownError } from '../protocol/errors.js';
import type { OcppProtocol } from '../protocol/protocol.js';
import type { SchemaValidator } from '../protocol/validator.js';
import type { Acceptance } from './admission.js';
import type { EventAdapterInterface } from './event-adapter.interface.js';
import type { HandlerRegistry } from './handler-registry.js';
import { livenessOf, reactToLeaseChange } from './lease-reactions.js';
import type { ClusterLogger } from './logger.js';
import { NOOP_METRICS_SINK } from './metrics-sink.js';
import type { ClusterMetricsSink } from './metrics-sink.js';
import type { ConnectionInfo, UpgradeRequest, UpgradeVerdict } from '../protocol/handshake.js';
import type { NodeLossCounters } from './node-loss.js';
import type { NodeOptions } from './node-options.js';
import { composeNodeParts } from './node-parts.js';
import type { NodeParts } from './node-parts.js';
import type { BatchOutcome, BroadcastOptions, BroadcastSummary, ChargerInfo, ClusterNodeMetrics, ConnectionListeners, DrainReport, SendOptions } from './node-types.js';
import { REPLY_GRACE_MS } from './remote-calls.js';
import { settleWithin } from './time-bounds.js';

export type { ChargerInfo, SendOptions, BroadcastOptions, BroadcastSummary, BatchOutcome, ConnectionListeners, ClusterNodeMetrics, DrainReport } from './node-types.js';

/** Bound on each clean-up step of stop(), so shutdown never hangs on a dead Redis. */
const STOP_STEP_TIMEOUT_MS = 2_000;
/** Bound on leaving the cluster (unsubscribe, release liveness, clean keys) at shutdown. */
const LEAVE_TIMEOUT_MS = 5_000;

/**
 * One node of the CSMS, framework-free: a composition of its parts (admission and connections,
 * the call router and the calls on top of it, the inbox, broadcast, drain, node loss) and their
 * lifecycle: join the cluster, take the sockets a front door hands it, stop or drain, follow the
 * lease. The front door (the WebSocket gateway) is built by the composition root
 * (lib/create-node.ts, or the Nest module), which hands sockets over with `accept()`.
 */
export class OcppClusterNode {
  readonly nodeId: string;
  private readonly parts: NodeParts;
  private started = false;
  private stopping = false;
  private stopPromise: Promise<void> | null = null;
  private leftCluster = false;

  constructor(
    private readonly options: NodeOptions,
    private readonly adapter: EventAdapterInterface,
    private readonly validator: SchemaValidator | null,
    handlers: HandlerRegistry,
    private readonly logger: ClusterLogger,
    listeners: ConnectionListeners = {},
    metricsSink: ClusterMetricsSink = NOOP_METRICS_SINK,
  ) {
    this.nodeId = options.nodeId;
    this.parts = composeNodeParts({
      ...{ options, adapter, validator, handlers, logger, listeners, metricsSink },
      // After a drain left the cluster no reply can come back: new calls are refused before anything is sent.
      isStopping: () => this.stopping || this.leftCluster,
      hasLeft: () => this.leftCluster,
      leaveCluster: () => this.leaveCluster(),
    });
  }

  /** Joins the cluster and reads its inbox: from here on it serves the sockets a front door hands it. */
  async join(): Promise<void> {
    this.parts.metrics.knowActions(this.options.protocols.flatMap((protocol) => this.validator?.actions(protocol) ?? []));
    await this.adapter.connect(this.nodeId, {
      localPresence: () => this.parts.presence.localPresence(),
      onLeaseChange: (change) => reactToLeaseChange(change, this.parts, this.logger),
      onPresenceRestored: (restore) => this.parts.connections.onPresenceRestored(restore),
    });
    // From here on a failure must not leave a half-joined node holding its id (and sockets) alive.
    this.started = true;
    this.parts.admission.watchLoad();
    this.parts.nodeLoss.start();
    try {
      await this.adapter.subscribe('node', (message, delivery) => this.parts.inbox.onMessage(message, delivery));
      await this.adapter.subscribe('allNodes', (message) => this.parts.inbox.onMessage(message));
    } catch (error) {
      await this.leaveCluster();
      throw error;
    }
  }

  // ---------------------------------------------------------------- what the front door asks

  /** Whether this upgrade may go ahead (logs when the node starts and stops refusing charge points). */
  acceptanceForUpgrade(): Acceptance {
    return this.parts.admission.forUpgrade();
  }

  /** Claims the identity before the handshake completes (epochs follow handshake order). */
  beforeUpgrade(request: UpgradeRequest): Promise<UpgradeVerdict> {
    return this.parts.connections.claimBeforeUpgrade(request);
  }

  /** A charge point socket the front door accepted: from now on this node serves it. */
  accept(socket: WebSocket, info: ConnectionInfo): void {
    this.parts.connections.onConnection(socket, info);
  }

  /** The front door refused an upgrade (metrics only). */
  upgradeRejected(reason: string): void {
    this.parts.metrics.sink.upgradeRejected(reason);
  }

  /** Stops accepting, closes charge point sockets with 1001, fails what waits, leaves the cluster. */
  stop(): Promise<void> {
    this.stopPromise ??= this.runStop();
    return this.stopPromise;
  }

  private async runStop(): Promise<void> {
    this.stopping = true;
    await this.parts.connections.closeAll(1001, 'server shutting down');
    // Bounded: with Redis down these would wait as long as the client retries.
    await settleWithin(this.parts.connections.removalsSettled(), STOP_STEP_TIMEOUT_MS);
    await this.withdrawParkedCalls();
    await this.awaitRemoteCalls();
    // Published already: they may still be delivered, only their answers are lost with us.
    this.parts.remoteCalls.failAll(() => new NodeShuttingDownError(true));
    this.parts.answeredCalls.clear();
    await this.leaveCluster();
  }

  /**
   * Hands this node's charge points to the rest of the cluster: readiness fails and upgrades get
   * 503 at once; sockets close with 1012 spread over the window; then the node leaves the cluster.
   */
  drain(options: { windowMs?: number } = {}): Promise<DrainReport> {
    return this.parts.drain.run(options.windowMs ?? this.options.drain.windowMs);
  }

  /**
   * A command already in another node's inbox may still be delivered: its caller hears the
   * owner's answer (or the timeout at its deadline), never "failed" while it can still happen.
   * So the node reads its replies until its own calls are settled, before it stops reading.
   * Only with the transport down is there nothing to wait for.
   */
  private async awaitRemoteCalls(): Promise<void> {
    if (this.parts.remoteCalls.size > 0 && this.adapter.isHealthy()) {
      await settleWithin(this.parts.remoteCalls.idle(), this.options.callTimeoutMs + REPLY_GRACE_MS);
    }
  }

  /** Our parked calls (`deliverWithinMs`) are withdrawn and answered NotDelivered: nobody would hear their answer after we left. */
  private async withdrawParkedCalls(): Promise<void> {
    if (this.parts.parkedCalls.size > 0) await settleWithin(this.parts.parkedCalls.withdrawAll("the caller's node is stopping"), STOP_STEP_TIMEOUT_MS);
  }

  private async leaveCluster(): Promise<void> {
    if (this.leftCluster || !this.started) return;
    this.leftCluster = true;
    this.parts.admission.stopWatchingLoad();
    // A drain ends here, before Nest's shutdown reaches stop(): its callers too get their answers.
    await this.withdrawParkedCalls();
    await this.awaitRemoteCalls();
    await settleWithin(this.parts.nodeLoss.stop(), STOP_STEP_TIMEOUT_MS);
    // disconnect() ends the subscriptions too; unsubscribing first cost seconds with Redis down.
    const leaving = this.adapter.disconnect().then(
      () => true,
      (error) => {
        this.logger.warn(`leaving the cluster failed: ${String(error)}`);
        return true;
      },
    );
    // With Redis gone each step waits for a reconnect that may never come: shutdown must not.
    if ((await settleWithin(leaving, LEAVE_TIMEOUT_MS)) === undefined) {
      this.logger.warn(`leaving the cluster took over ${LEAVE_TIMEOUT_MS} ms (transport unreachable?): dropping its connections`);
      this.adapter.abort?.();
    }
  }

  /** Liveness: false once this node knows it lost its authority (see livenessOf). */
  liveness(): { live: true } | { live: false; reason: string } {
    return livenessOf(this.parts);
  }

  /** Whether the node takes new charge points now, and why not (readiness; no side effects). */
  acceptance(): Acceptance {
    return this.parts.admission.acceptance();
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  get isDraining(): boolean {
    return this.parts.drain.isDraining;
  }

  // ---------------------------------------------------------------- the public API, delegated

  sendToClient(identity: string, protocol: OcppProtocol | undefined, action: string, payload: Record<string, unknown>, options?: SendOptions) {
    return this.parts.calls.sendToClient(identity, protocol, action, payload, options);
  }

  sendMessage(identity: string, action: string, payload: Record<string, unknown>, options?: SendOptions): Promise<void> {
    return this.parts.calls.sendMessage(identity, action, payload, options);
  }

  broadcastBatch(identities: readonly string[], action: string, payload: Record<string, unknown>, options?: SendOptions): Promise<BatchOutcome[]> {
    return this.parts.calls.broadcastBatch(identities, action, payload, options);
  }

  broadcast(action: string, payload: Record<string, unknown>, options?: BroadcastOptions): Promise<BroadcastSummary> {
    return this.parts.broadcasts.broadcast(action, payload, options);
  }

  isConnectedLocally(identity: string): boolean {
    return this.parts.presence.isConnectedLocally(identity);
  }

  isConnected(identity: string): Promise<boolean> {
    return this.parts.presence.isConnected(identity);
  }

  getPresence(identity: string): Promise<ChargerInfo | null> {
    return this.parts.presence.getPresence(identity);
  }

  listLocal(): ChargerInfo[] {
    return this.parts.presence.listLocal();
  }

  listAll(): Promise<ChargerInfo[]> {
    return this.parts.presence.listAll();
  }

  async metrics(): Promise<ClusterNodeMetrics> {
    const adapterMetrics = { ...(await this.adapter.metrics()), ...this.nodeLossCounters() };
    return this.parts.metrics.snapshot(this.nodeId, this.parts.registry, this.parts.remoteCalls.size, adapterMetrics, this.parts.answeredCalls);
  }

  /** What this node's takeovers of lost nodes did (reported with the transport's counters, as before). */
  nodeLossCounters(): NodeLossCounters {
    return this.parts.nodeLoss.counters();
  }

  /** Local connections by protocol (cheap: no I/O). */
  connectionCounts(): Record<string, number> {
    return this.parts.registry.countByProtocol();
  }

  get inFlightRemoteCalls(): number {
    return this.parts.remoteCalls.size;
  }

  get transport(): EventAdapterInterface {
    return this.adapter;
  }
}
