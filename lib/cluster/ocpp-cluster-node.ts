import { randomUUID } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import type { WebSocket } from 'ws';
import { validateIdentity } from '../gateway/identity.js';
import {
  InvalidOptionsError,
  OcppClusterError,
  OcppRpcError,
  ClusterUnavailableError,
  NodeShuttingDownError,
  NotConnectedError,
  OcppValidationError,
  ProtocolMismatchError,
} from '../protocol/errors.js';
import { AnsweredCalls } from '../protocol/answered-calls.js';
import { callTimeoutProblem } from '../protocol/call-timeout.js';
import { payloadEncodingProblem } from '../protocol/payload-depth.js';
import type { OcppProtocol } from '../protocol/protocol.js';
import { RpcSession } from '../protocol/rpc-session.js';
import type { InboundCall } from '../protocol/rpc-session.js';
import type { SchemaValidator } from '../protocol/validator.js';
import { OcppWebSocketGateway } from '../gateway/ocpp-websocket-gateway.js';
import type { ConnectionInfo } from '../gateway/ocpp-websocket-gateway.js';
import type { ResolvedOcppClusterOptions } from '../ocpp-cluster.options.js';
import { mapSettledBounded } from './bounded-all.js';
import type {
  BroadcastEnvelope,
  ClusterMessage,
  CommandEnvelope,
  CommandOutcome,
  EvictEnvelope,
} from './envelope.js';
import { BROADCAST_CHANNEL, nodeChannel } from './envelope.js';
import type { EventAdapterInterface, PresenceRecord } from './event-adapter.interface.js';
import type { HandlerRegistry } from './handler-registry.js';
import { LocalRegistry } from './local-registry.js';
import type { LocalConnection } from './local-registry.js';
import type { ClusterLogger } from './logger.js';
import { NOOP_METRICS_SINK, outcomeLabel } from './metrics-sink.js';
import type { ClusterMetricsSink } from './metrics-sink.js';
import { outcomeFromError } from './outcome.js';
import { settleWithin, sleep as delay } from './time-bounds.js';
import { OwnerCache } from './owner-cache.js';
import { RemoteCalls } from './remote-calls.js';

/** A charge point as the public API shows it. */
export interface ChargerInfo {
  identity: string;
  protocol: OcppProtocol;
  nodeId: string;
  connectedAt: string;
}

export interface SendOptions {
  /** Default: the module's `callTimeoutMs`. */
  timeoutMs?: number;
}

export interface BroadcastOptions extends SendOptions {
  /** Only charge points speaking this protocol. */
  protocol?: OcppProtocol;
}

export interface BroadcastSummary {
  delivered: number;
  failed: number;
  /** Nodes that reported back before the deadline. */
  nodes: number;
}

export type BatchOutcome =
  | { identity: string; status: 'fulfilled'; result: Record<string, unknown> }
  | { identity: string; status: 'rejected'; error: Error };

export interface ConnectionListeners {
  onConnected?(charger: ChargerInfo, session: unknown): void | Promise<void>;
  onDisconnected?(charger: ChargerInfo & { code: number; reason: string }, session: unknown): void | Promise<void>;
}

export interface ClusterNodeMetrics {
  nodeId: string;
  localConnections: number;
  connectionsByProtocol: Record<string, number>;
  inFlightRemoteCalls: number;
  counters: {
    sent: number;
    received: number;
    timeouts: number;
    failures: number;
    remoteSent: number;
    remoteReceived: number;
    badFrames: number;
  };
  redisConsumerLag: { pendingMessages: number; lag: number };
  activeSubscriptions: number;
  adapter: Record<string, number>;
}

/** Forwarding limit when a command's target keeps moving between nodes. */
const MAX_HOPS = 3;

/**
 * One node of the CSMS, framework-free: accepts charge points through the gateway, keeps
 * presence in the cluster transport, and routes calls to whichever node holds the socket.
 */
export class OcppClusterNode {
  readonly nodeId: string;
  private readonly registry = new LocalRegistry();
  private readonly remoteCalls = new RemoteCalls();
  /** OCPP 2.1 retries (same message id) get their first answer again, also after a reconnect here. */
  private readonly answeredCalls = new AnsweredCalls();
  private readonly owners: OwnerCache;
  private readonly broadcastWaits = new Map<string, { replies: Map<string, BroadcastSummary>; onReply(): void }>();
  private readonly presenceRemovals = new Set<Promise<unknown>>();
  private gateway: OcppWebSocketGateway | null = null;
  private started = false;
  private stopping = false;
  private stopPromise: Promise<void> | null = null;
  /** Actions the configured protocols define (metric labels stay bounded: others count as "unknown"). */
  private knownActions = new Set<string>();
  private drainPromise: Promise<DrainReport> | null = null;
  /** Why the last upgrade was refused (null: accepted), so refusals are logged once per change. */
  private lastRefusal: string | null = null;
  /** Identities this node closed while draining: commands for them wait for the new owner. */
  private readonly drainedIdentities = new Set<string>();
  /** Inbox commands being served (drain waits for them). */
  private activeCommands = 0;
  private readonly counters = { sent: 0, received: 0, timeouts: 0, failures: 0, remoteSent: 0, remoteReceived: 0, badFrames: 0 };

  constructor(
    private readonly options: ResolvedOcppClusterOptions,
    private readonly adapter: EventAdapterInterface,
    private readonly validator: SchemaValidator | null,
    private readonly handlers: HandlerRegistry,
    private readonly logger: ClusterLogger,
    private readonly listeners: ConnectionListeners = {},
    private readonly metricsSink: ClusterMetricsSink = NOOP_METRICS_SINK,
  ) {
    this.nodeId = options.nodeId;
    this.owners = new OwnerCache(options.ownerCacheMs);
  }

  /** Joins the cluster, then opens the gateway (on `httpServer`, or its own port). Returns the own port if any. */
  async start(httpServer?: HttpServer): Promise<number | undefined> {
    if (this.options.port === undefined && !httpServer) {
      throw new InvalidOptionsError('port', 'no HTTP server to attach to: give a port, or start the node inside a Nest HTTP application');
    }
    this.knownActions = new Set(this.options.protocols.flatMap((protocol) => this.validator?.actions(protocol) ?? []));
    await this.adapter.connect(this.nodeId, {
      localPresence: () => this.localPresence(),
    });
    // From here on a failure must not leave a half-joined node holding its id (and sockets) alive.
    this.started = true;
    try {
      return await this.openGateway(httpServer);
    } catch (error) {
      await this.leaveCluster();
      throw error;
    }
  }

  private async openGateway(httpServer?: HttpServer): Promise<number | undefined> {
    await this.adapter.subscribe(nodeChannel(this.nodeId), (message) => this.onClusterMessage(message));
    await this.adapter.subscribe(BROADCAST_CHANNEL, (message) => this.onClusterMessage(message));
    this.gateway = new OcppWebSocketGateway({
      path: this.options.path,
      protocols: this.options.protocols,
      maxIdentityLength: this.options.maxIdentityLength,
      identityPattern: this.options.identityPattern,
      authenticate: this.options.authenticate,
      maxPayload: this.options.maxPayload,
      perMessageDeflate: this.options.perMessageDeflate,
      maxConnections: this.options.maxConnections,
      handshakeTimeoutMs: this.options.handshakeTimeoutMs,
      maxPendingHandshakes: this.options.maxPendingHandshakes,
      connectionRateLimit: this.options.connectionRateLimit,
      isAcceptingConnections: () => this.acceptanceForUpgrade(),
      onRejected: (reason) => this.metricsSink.upgradeRejected(reason),
      onConnection: (socket, info) => this.onConnection(socket, info),
      logger: this.logger,
    });
    if (this.options.port !== undefined) {
      return this.gateway.listen(this.options.port, this.options.host, this.options.tls);
    }
    this.gateway.attach(httpServer!);
    return undefined;
  }

  /** Stops accepting, closes charge point sockets with 1001, fails what waits, leaves the cluster. */
  stop(): Promise<void> {
    this.stopPromise ??= this.runStop();
    return this.stopPromise;
  }

  private async runStop(): Promise<void> {
    this.stopping = true;
    await this.gateway?.close();
    const closing = [...this.registry.values()].map((connection) =>
      connection.rpc.close(1001, 'server shutting down').catch(() => undefined),
    );
    await Promise.all(closing);
    // Bounded: with Redis down these would wait as long as the client retries.
    await settleWithin(Promise.all(this.presenceRemovals), STOP_STEP_TIMEOUT_MS);
    this.remoteCalls.failAll(() => new NodeShuttingDownError());
    await this.leaveCluster();
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  get isDraining(): boolean {
    return this.drainPromise !== null;
  }

  /** Whether the gateway takes new charge points now, and why not. */
  acceptance(): { ok: true } | { ok: false; status: number; reason: string } {
    if (this.stopping) return { ok: false, status: 503, reason: 'shutting down' };
    if (this.drainPromise) return { ok: false, status: 503, reason: 'draining' };
    if (this.options.refuseUpgradesWhileTransportDown) {
      // One check: healthIssue() where the adapter says why, isHealthy() where it cannot.
      const issue = this.adapter.healthIssue ? this.adapter.healthIssue() : this.adapter.isHealthy() ? null : '';
      if (issue !== null) {
        return { ok: false, status: 503, reason: issue ? `cluster transport unavailable (${issue})` : 'cluster transport unavailable' };
      }
    }
    return { ok: true };
  }

  /** acceptance() for the gateway, logging when the node starts and stops refusing charge points. */
  private acceptanceForUpgrade(): ReturnType<OcppClusterNode['acceptance']> {
    const verdict = this.acceptance();
    const refusal = verdict.ok ? null : verdict.reason;
    if (refusal === this.lastRefusal) return verdict;
    this.lastRefusal = refusal;
    if (!verdict.ok) this.logger.warn(`refusing new charge points with ${verdict.status}: ${verdict.reason}`);
    else this.logger.log('accepting new charge points again');
    return verdict;
  }

  /**
   * Hands this node's charge points to the rest of the cluster: readiness fails and upgrades get
   * 503 at once; sockets close with 1012 spread over the window (with jitter, so they do not all
   * reconnect to one node in the same second); commands for them wait for their new owner and are
   * forwarded; in-flight work finishes; then the node leaves the cluster.
   */
  drain(options: { windowMs?: number } = {}): Promise<DrainReport> {
    this.drainPromise ??= this.runDrain(options.windowMs ?? this.options.drain.windowMs);
    return this.drainPromise;
  }

  private async runDrain(windowMs: number): Promise<DrainReport> {
    const started = Date.now();
    const connections = [...this.registry.values()];
    this.logger.log(`draining ${connections.length} charge points over ${windowMs} ms`);
    await Promise.all(
      connections.map(async (connection) => {
        await delay(Math.random() * windowMs);
        // New calls now wait for the charge point's next node; the ones on this socket finish first.
        this.drainedIdentities.add(connection.identity);
        const idleBy = Date.now() + this.options.callTimeoutMs;
        while ((connection.rpc.inFlightCall !== null || connection.rpc.queuedCalls > 0) && Date.now() < idleBy) {
          await delay(20);
        }
        await connection.rpc.close(1012, 'service restart').catch(() => undefined);
      }),
    );
    const settleUntil = Date.now() + this.options.drain.settleMs;
    const identities = [...this.drainedIdentities];
    let moved = 0;
    while (Date.now() < settleUntil) {
      const owners = await this.adapter.getPresenceBatch(identities).catch(() => new Map<string, PresenceRecord>());
      moved = identities.filter((identity) => {
        const owner = owners.get(identity);
        return owner !== undefined && owner.nodeId !== this.nodeId;
      }).length;
      if (moved === identities.length && this.activeCommands === 0) break;
      await delay(50);
    }
    while (this.activeCommands > 0 && Date.now() < settleUntil + this.options.callTimeoutMs) await delay(50);
    await this.leaveCluster();
    const report = { closed: connections.length, reconnectedElsewhere: moved, durationMs: Date.now() - started };
    this.logger.log(`drained: ${report.closed} closed, ${report.reconnectedElsewhere} reconnected elsewhere in ${report.durationMs} ms`);
    return report;
  }

  private leftCluster = false;

  private async leaveCluster(): Promise<void> {
    if (this.leftCluster || !this.started) return;
    this.leftCluster = true;
    await this.adapter.unsubscribe(nodeChannel(this.nodeId)).catch(() => undefined);
    await this.adapter.unsubscribe(BROADCAST_CHANNEL).catch(() => undefined);
    await this.adapter.disconnect().catch((error) => this.logger.warn(`leaving the cluster failed: ${String(error)}`));
  }

  // ---------------------------------------------------------------- public calls

  /** The charge point's reply, from whichever node holds its socket. */
  async sendToClient(
    identity: string,
    protocol: OcppProtocol | undefined,
    action: string,
    payload: Record<string, unknown>,
    options: SendOptions = {},
  ): Promise<Record<string, unknown>> {
    if (this.stopping) throw new NodeShuttingDownError();
    this.requireValidIdentity(identity);
    const timeoutMs = this.timeoutOf(options);
    this.requireEncodable(action, payload);
    const started = performance.now();
    const deadline = Date.now() + timeoutMs;
    this.counters.sent++;
    const local = this.servingConnection(identity);
    const route = local ? 'local' : 'remote';
    try {
      const result = local
        ? await this.callLocal(local, protocol, action, payload, deadline)
        : await this.callRemote(identity, protocol, action, payload, timeoutMs, deadline);
      this.metricsSink.outboundCall(this.actionLabel(action), route, 'ok', (performance.now() - started) / 1000);
      return result;
    } catch (error) {
      if ((error as { code?: string }).code === 'OCPP_TIMEOUT') this.counters.timeouts++;
      else this.counters.failures++;
      this.metricsSink.outboundCall(this.actionLabel(action), route, outcomeLabel(error), (performance.now() - started) / 1000);
      throw error;
    }
  }

  /**
   * OCPP 2.1 SEND: a message the charge point never answers. Resolves once the owning node
   * wrote it to the socket.
   */
  async sendMessage(identity: string, action: string, payload: Record<string, unknown>, options: SendOptions = {}): Promise<void> {
    if (this.stopping) throw new NodeShuttingDownError();
    this.requireValidIdentity(identity);
    const timeoutMs = this.timeoutOf(options);
    this.requireEncodable(action, payload);
    const deadline = Date.now() + timeoutMs;
    const local = this.servingConnection(identity);
    if (local) {
      local.rpc.sendMessage(action, payload);
      return;
    }
    const owner = await this.adapter.getPresence(identity);
    if (!owner || owner.nodeId === this.nodeId) throw new NotConnectedError(identity);
    const command = { ...this.commandFor(identity, undefined, action, payload, deadline), fireAndForget: true };
    const reply = this.remoteCalls.wait(command.id, { identity, action, timeoutMs, deadline });
    await this.adapter.publish(nodeChannel(owner.nodeId), command).catch((error) => {
      this.remoteCalls.fail(command.id, new ClusterUnavailableError(errorMessage(error)));
    });
    await reply;
  }

  /** Every connected charge point in the cluster gets the call; each node delivers its own. */
  async broadcast(action: string, payload: Record<string, unknown>, options: BroadcastOptions = {}): Promise<BroadcastSummary> {
    if (this.stopping) throw new NodeShuttingDownError();
    const timeoutMs = this.timeoutOf(options);
    this.requireEncodable(action, payload);
    const envelope: BroadcastEnvelope = {
      kind: 'broadcast',
      id: randomUUID(),
      origin: this.nodeId,
      action,
      payload,
      protocol: options.protocol,
      deadline: Date.now() + timeoutMs,
    };
    this.validateRequest(options.protocol, action, payload);
    const owners = new Set((await this.adapter.listPresence()).map((record) => record.nodeId));
    owners.add(this.nodeId);
    const replies = new Map<string, BroadcastSummary>();
    const allReported = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs + 1_000);
      timer.unref?.();
      this.broadcastWaits.set(envelope.id, {
        replies,
        onReply: () => {
          if ([...owners].every((node) => replies.has(node))) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
    try {
      await this.adapter.publish(BROADCAST_CHANNEL, envelope);
      await allReported;
    } finally {
      this.broadcastWaits.delete(envelope.id);
    }
    const summary: BroadcastSummary = { delivered: 0, failed: 0, nodes: replies.size };
    for (const reply of replies.values()) {
      summary.delivered += reply.delivered;
      summary.failed += reply.failed;
    }
    return summary;
  }

  /** Sends to each identity through its owner (one publish batch for all remote ones); every outcome comes back. */
  async broadcastBatch(
    identities: readonly string[],
    action: string,
    payload: Record<string, unknown>,
    options: SendOptions = {},
  ): Promise<BatchOutcome[]> {
    if (this.stopping) throw new NodeShuttingDownError();
    const timeoutMs = this.timeoutOf(options);
    this.requireEncodable(action, payload);
    const deadline = Date.now() + timeoutMs;
    const unique = [...new Set(identities)];
    // An identity that can never connect gets its own outcome; it must not reach a presence key.
    const invalid = new Set(unique.filter((identity) => !this.isPossibleIdentity(identity)));
    const remoteIdentities = unique.filter((identity) => !invalid.has(identity) && !this.servingConnection(identity));
    const owners = remoteIdentities.length > 0 ? await this.adapter.getPresenceBatch(remoteIdentities) : new Map();
    const batch: { channel: string; message: ClusterMessage }[] = [];
    // Each promise settles into an outcome at once, so none is ever an unhandled rejection.
    const outcomes = new Map<string, Promise<BatchOutcome>>();
    const track = (identity: string, call: Promise<Record<string, unknown>>) =>
      outcomes.set(
        identity,
        call.then(
          (result): BatchOutcome => ({ identity, status: 'fulfilled', result }),
          (error): BatchOutcome => ({ identity, status: 'rejected', error: error as Error }),
        ),
      );

    for (const identity of unique) {
      if (invalid.has(identity)) {
        outcomes.set(identity, Promise.resolve({ identity, status: 'rejected', error: invalidIdentityError(identity) }));
        continue;
      }
      const local = this.servingConnection(identity);
      if (local) {
        track(identity, this.callLocal(local, undefined, action, payload, deadline));
        continue;
      }
      const owner: PresenceRecord | undefined = owners.get(identity);
      if (owner?.nodeId === this.nodeId && this.drainedIdentities.has(identity)) {
        track(identity, this.callRemote(identity, undefined, action, payload, timeoutMs, deadline));
        continue;
      }
      if (!owner || owner.nodeId === this.nodeId) {
        outcomes.set(identity, Promise.resolve({ identity, status: 'rejected', error: new NotConnectedError(identity) }));
        continue;
      }
      const command = this.commandFor(identity, undefined, action, payload, deadline);
      track(identity, this.remoteCalls.wait(command.id, { identity, action, timeoutMs, deadline }));
      batch.push({ channel: nodeChannel(owner.nodeId), message: command });
    }
    if (batch.length > 0) {
      this.counters.remoteSent += batch.length;
      await this.adapter.publishBatch(batch).catch((error) => {
        for (const { message } of batch) {
          this.remoteCalls.fail((message as CommandEnvelope).id, new ClusterUnavailableError(String(error)));
        }
      });
    }
    return Promise.all(outcomes.values());
  }

  private timeoutOf(options: SendOptions): number {
    const timeoutMs = options.timeoutMs ?? this.options.callTimeoutMs;
    const problem = callTimeoutProblem(timeoutMs);
    if (problem !== null) throw new InvalidOptionsError('timeoutMs', problem);
    return timeoutMs;
  }

  /** A label that cannot grow without bound whatever charge points or callers send. */
  private actionLabel(action: string): string {
    return this.knownActions.has(action) || this.handlers.hasAnyHandler(action) ? action : 'unknown';
  }

  /** Identities that can never be connected (they would not pass the gateway) fail before any I/O. */
  private requireValidIdentity(identity: string): void {
    if (!this.isPossibleIdentity(identity)) throw invalidIdentityError(identity);
  }

  private isPossibleIdentity(identity: string): boolean {
    return typeof identity === 'string' && validateIdentity(identity, { maxLength: this.options.maxIdentityLength }) === null;
  }

  /** A payload JSON cannot carry is the caller's error, found before any I/O (not a transport failure later). */
  private requireEncodable(action: string, payload: Record<string, unknown>): void {
    const problem = payloadEncodingProblem(payload);
    if (problem !== null) throw new OcppValidationError(action, 'request', 'FormatViolation', problem);
  }

  /** The local socket that takes new calls for `identity` (none once it is being handed over). */
  private servingConnection(identity: string): LocalConnection | undefined {
    if (this.drainedIdentities.size > 0 && this.drainedIdentities.has(identity)) return undefined;
    return this.registry.get(identity);
  }

  isConnectedLocally(identity: string): boolean {
    return this.registry.has(identity);
  }

  async isConnected(identity: string): Promise<boolean> {
    return (await this.getPresence(identity)) !== null;
  }

  async getPresence(identity: string): Promise<ChargerInfo | null> {
    const local = this.registry.get(identity);
    if (local) return this.infoOf(local);
    if (validateIdentity(identity, { maxLength: this.options.maxIdentityLength }) !== null) return null;
    const record = await this.adapter.getPresence(identity);
    return record ? toChargerInfo(record) : null;
  }

  /** Charge points whose socket is on this node. */
  listLocal(): ChargerInfo[] {
    return [...this.registry.values()].map((connection) => this.infoOf(connection));
  }

  /** Every charge point in the cluster (this node's from memory, the rest from presence). */
  async listAll(): Promise<ChargerInfo[]> {
    const byIdentity = new Map<string, ChargerInfo>();
    for (const record of await this.adapter.listPresence()) byIdentity.set(record.identity, toChargerInfo(record));
    for (const connection of this.registry.values()) byIdentity.set(connection.identity, this.infoOf(connection));
    return [...byIdentity.values()].sort((a, b) => a.identity.localeCompare(b.identity));
  }

  async metrics(): Promise<ClusterNodeMetrics> {
    const adapterMetrics = await this.adapter.metrics();
    return {
      nodeId: this.nodeId,
      localConnections: this.registry.size,
      connectionsByProtocol: this.registry.countByProtocol(),
      inFlightRemoteCalls: this.remoteCalls.size,
      counters: { ...this.counters },
      redisConsumerLag: { pendingMessages: adapterMetrics.pendingMessages, lag: adapterMetrics.consumerLag },
      activeSubscriptions: adapterMetrics.activeSubscriptions,
      adapter: { ...adapterMetrics },
    };
  }

  /** Local connections by protocol (cheap: no I/O). */
  connectionCounts(): Record<string, number> {
    return this.registry.countByProtocol();
  }

  get inFlightRemoteCalls(): number {
    return this.remoteCalls.size;
  }

  get transport(): EventAdapterInterface {
    return this.adapter;
  }

  get acceptingGateway(): OcppWebSocketGateway | null {
    return this.gateway;
  }

  // ---------------------------------------------------------------- calls, local and remote

  private callLocal(
    connection: LocalConnection,
    protocol: OcppProtocol | undefined,
    action: string,
    payload: Record<string, unknown>,
    deadline: number,
  ): Promise<Record<string, unknown>> {
    if (protocol && protocol !== connection.protocol) {
      return Promise.reject(new ProtocolMismatchError(connection.identity, protocol, connection.protocol));
    }
    // The deadline decides; timeoutMs only has to be a valid positive number.
    return connection.rpc.call(action, payload, { deadline, timeoutMs: Math.max(1, deadline - Date.now()) });
  }

  private async callRemote(
    identity: string,
    protocol: OcppProtocol | undefined,
    action: string,
    payload: Record<string, unknown>,
    timeoutMs: number,
    deadline: number,
  ): Promise<Record<string, unknown>> {
    const call: RemoteCall = { protocol, action, payload, timeoutMs, deadline };
    const remembered = await this.rememberedOwner(identity);
    if (remembered && this.requestProblem(remembered, call) === null) return this.sendRemote(remembered, call);
    let owner = await this.lookupPresence(identity);
    if (owner?.nodeId === this.nodeId && this.drainedIdentities.has(identity)) {
      owner = await this.awaitNewOwner(identity, deadline);
    }
    if (!owner || owner.nodeId === this.nodeId) throw new NotConnectedError(identity);
    const problem = this.requestProblem(owner, call);
    if (problem) throw problem;
    this.owners.remember(owner);
    return this.sendRemote(owner, call);
  }

  /** The cached owner of `identity` while it is fresh and its node is alive. */
  private async rememberedOwner(identity: string): Promise<PresenceRecord | undefined> {
    const owner = this.owners.get(identity);
    if (!owner) return undefined;
    if (await this.adapter.isNodeAlive(owner.nodeId).catch(() => false)) return owner;
    this.owners.forget(identity);
    return undefined;
  }

  /**
   * Why `owner`'s connection cannot take the request as it is, or null. For a remembered owner
   * a problem only means the entry may describe an older connection: presence decides then,
   * and the caller's error comes from there.
   */
  private requestProblem(owner: PresenceRecord, { protocol, action, payload }: RemoteCall): Error | null {
    if (protocol && protocol !== owner.protocol) return new ProtocolMismatchError(owner.identity, protocol, owner.protocol);
    return this.requestValidationError(owner.protocol, action, payload);
  }

  /** Sends the command to the owner's inbox; settles with the owner's answer. */
  private async sendRemote(owner: PresenceRecord, { protocol, action, payload, timeoutMs, deadline }: RemoteCall): Promise<Record<string, unknown>> {
    const { identity } = owner;
    const command = this.commandFor(identity, protocol, action, payload, deadline);
    const reply = this.remoteCalls.wait(command.id, { identity, action, timeoutMs, deadline, expectedProtocol: protocol });
    this.counters.remoteSent++;
    try {
      await this.adapter.publish(nodeChannel(owner.nodeId), command);
    } catch (error) {
      this.remoteCalls.fail(command.id, new ClusterUnavailableError(errorMessage(error)));
    }
    return reply;
  }

  private commandFor(
    identity: string,
    protocol: OcppProtocol | undefined,
    action: string,
    payload: Record<string, unknown>,
    deadline: number,
  ): CommandEnvelope {
    return { kind: 'command', id: randomUUID(), origin: this.nodeId, identity, action, payload, protocol, deadline };
  }

  private async lookupPresence(identity: string): Promise<PresenceRecord | null> {
    try {
      const owner = await this.adapter.getPresence(identity);
      this.metricsSink.presenceOperation('lookup', 'ok');
      return owner;
    } catch (error) {
      this.metricsSink.presenceOperation('lookup', 'error');
      if (error instanceof OcppClusterError) throw error;
      throw new ClusterUnavailableError(errorMessage(error));
    }
  }

  /** A charge point we closed while draining: wait (until the deadline) for it to reconnect elsewhere. */
  private async awaitNewOwner(identity: string, deadline: number): Promise<PresenceRecord | null> {
    while (Date.now() < deadline) {
      const owner = await this.adapter.getPresence(identity).catch(() => null);
      if (owner && owner.nodeId !== this.nodeId) return owner;
      if (!owner && !this.drainedIdentities.has(identity)) return null;
      await delay(50);
    }
    return null;
  }

  /** Fails fast on the caller's node, before anything crosses the network. */
  private validateRequest(protocol: OcppProtocol | undefined, action: string, payload: Record<string, unknown>): void {
    const error = this.requestValidationError(protocol, action, payload);
    if (error) throw error;
  }

  private requestValidationError(protocol: OcppProtocol | undefined, action: string, payload: Record<string, unknown>): OcppValidationError | null {
    const problem = this.validator && protocol ? this.validator.validate(protocol, action, 'request', payload) : null;
    return problem ? new OcppValidationError(action, 'request', problem.errorCode, problem.description, problem.details) : null;
  }

  // ---------------------------------------------------------------- cluster inbox

  private onClusterMessage(message: ClusterMessage): void | Promise<void> {
    switch (message.kind) {
      case 'command':
        return this.onCommand(message);
      case 'reply':
        this.counters.remoteReceived++;
        if (message.outcome.status === 'notConnected') this.owners.forget(message.identity);
        else this.owners.answeredBy(message.identity, message.from);
        if (!this.remoteCalls.settle(message.id, message.outcome)) this.onBroadcastReply(message.id, message.from, message.outcome);
        return;
      case 'broadcast':
        return this.onBroadcast(message);
      case 'evict':
        return this.onEvict(message);
      case 'nodeLeft':
        this.owners.forgetNode(message.nodeId);
        return;
    }
  }

  /**
   * A command for one of our sockets. The call is queued synchronously (before any await),
   * so commands read in stream order reach the charge point's FIFO in that order.
   */
  private onCommand(command: CommandEnvelope): Promise<void> {
    this.activeCommands++;
    const outcome = this.runCommand(command);
    return outcome
      .then((result) => this.reply(command, result))
      .finally(() => {
        this.activeCommands--;
      });
  }

  private runCommand(command: CommandEnvelope): Promise<CommandOutcome> {
    if (Date.now() >= command.deadline) return Promise.resolve({ status: 'timeout', sent: false });
    const connection = this.servingConnection(command.identity);
    if (!connection) return this.forwardOrGiveUp(command);
    if (command.fireAndForget) {
      try {
        connection.rpc.sendMessage(command.action, command.payload);
        return Promise.resolve({ status: 'result', payload: {} });
      } catch (error) {
        return Promise.resolve(outcomeFromError(error));
      }
    }
    return this.callLocal(connection, command.protocol, command.action, command.payload, command.deadline).then(
      (payload): CommandOutcome => ({ status: 'result', payload }),
      (error): CommandOutcome => outcomeFromError(error),
    );
  }

  /** The charge point moved after the caller looked it up: follow it while the deadline allows. */
  private async forwardOrGiveUp(command: CommandEnvelope): Promise<CommandOutcome> {
    const hops = command.hops ?? 0;
    let owner = hops < MAX_HOPS ? await this.adapter.getPresence(command.identity).catch(() => null) : null;
    if (owner?.nodeId === this.nodeId && this.drainedIdentities.has(command.identity)) {
      owner = await this.awaitNewOwner(command.identity, command.deadline);
    }
    if (!owner || owner.nodeId === this.nodeId || Date.now() >= command.deadline) {
      return { status: 'notConnected' };
    }
    try {
      await this.adapter.publish(nodeChannel(owner.nodeId), { ...command, hops: hops + 1 });
      return FORWARDED;
    } catch (error) {
      return { status: 'failed', errorCode: 'OCPP_CLUSTER_UNAVAILABLE', message: `forwarding failed: ${errorMessage(error)}` };
    }
  }

  /** Sends the outcome to the caller, retrying (a Redis blip must not turn an answer into a timeout). */
  private async reply(command: CommandEnvelope, outcome: CommandOutcome): Promise<void> {
    if (outcome === FORWARDED) return;
    const envelope = { kind: 'reply', id: command.id, from: this.nodeId, identity: command.identity, outcome } as const;
    const giveUpAt = command.deadline + REPLY_GRACE_MS;
    for (let backoffMs = 50; ; backoffMs = Math.min(backoffMs * 2, 1_000)) {
      try {
        await this.adapter.publish(nodeChannel(command.origin), envelope);
        return;
      } catch (error) {
        if (Date.now() + backoffMs >= giveUpAt || this.leftCluster) {
          this.logger.warn(`reply to ${command.origin} for ${command.action} on ${command.identity} lost: ${errorMessage(error)}`);
          return;
        }
        await delay(backoffMs);
      }
    }
  }

  private async onBroadcast(message: BroadcastEnvelope): Promise<void> {
    const targets = [...this.registry.values()].filter(
      (connection) => !message.protocol || connection.protocol === message.protocol,
    );
    this.metricsSink.broadcastFanout(targets.length);
    const results = await mapSettledBounded(targets, this.options.broadcastConcurrency, (connection) =>
      this.callLocal(connection, undefined, message.action, message.payload, message.deadline),
    );
    const delivered = results.filter((result) => result.status === 'fulfilled').length;
    const summary = { delivered, failed: results.length - delivered, nodes: 1 };
    if (message.origin === this.nodeId) {
      this.onBroadcastReply(message.id, this.nodeId, { status: 'result', payload: { ...summary } });
      return;
    }
    await this.adapter.publish(nodeChannel(message.origin), {
      kind: 'reply',
      id: message.id,
      from: this.nodeId,
      identity: '',
      outcome: { status: 'result', payload: { ...summary } },
    });
  }

  private onBroadcastReply(id: string, from: string, outcome: CommandOutcome): void {
    const wait = this.broadcastWaits.get(id);
    if (!wait || outcome.status !== 'result') return;
    const { delivered, failed } = outcome.payload as { delivered: number; failed: number };
    wait.replies.set(from, { delivered, failed, nodes: 1 });
    wait.onReply();
  }

  private async onEvict(message: EvictEnvelope): Promise<void> {
    const connection = this.registry.get(message.identity);
    if (!connection) return;
    // A socket whose claim is still in flight has epoch 0: learn its epoch before judging it stale.
    await connection.claimed;
    if (this.registry.get(message.identity) !== connection || connection.epoch > message.epoch) return;
    this.logger.log(`${message.identity} reconnected on ${message.newOwner}; closing the stale socket here`);
    this.registry.deleteIf(connection);
    await connection.rpc.close(1000, 'replaced by a newer connection');
  }

  // ---------------------------------------------------------------- connections

  private onConnection(socket: WebSocket, connectionInfo: ConnectionInfo): void {
    // Only what the socket's lifetime needs: keeping the upgrade request alive would hold its
    // headers in memory for every connection.
    const info: ConnectionContext = {
      identity: connectionInfo.identity,
      protocol: connectionInfo.protocol,
      session: connectionInfo.session,
      remoteAddress: connectionInfo.remoteAddress,
    };
    const connectedAt = Date.now();
    const connection: LocalConnection = {
      identity: info.identity,
      protocol: info.protocol,
      epoch: 0,
      connectedAt,
      session: info.session,
      remoteAddress: info.remoteAddress,
      rpc: undefined as unknown as RpcSession,
    };
    connection.rpc = new RpcSession({
      identity: info.identity,
      protocol: info.protocol,
      socket,
      callTimeoutMs: this.options.callTimeoutMs,
      maxQueueSize: this.options.maxQueueSize,
      pingIntervalMs: this.options.pingIntervalMs,
      maxPayload: this.options.maxPayload,
      validator: this.validator,
      rateLimit: this.options.rateLimit === false ? null : this.options.rateLimit,
      answeredCalls: this.answeredCalls,
      onCall: (call) => {
        this.counters.received++;
        return this.dispatchInbound(call, info);
      },
      onSend: (message) => {
        this.counters.received++;
        const handler = this.handlers.find(message.action, info.protocol);
        if (!handler) return;
        Promise.resolve()
          .then(() =>
            handler(message.payload, {
              identity: info.identity,
              protocol: info.protocol,
              action: message.action,
              messageId: message.id,
              session: info.session,
              nodeId: this.nodeId,
              remoteAddress: info.remoteAddress,
            }),
          )
          .catch((error) => this.logger.warn(`SEND handler for ${message.action} failed: ${String(error)}`));
      },
      onClose: (code, reason) => this.onDisconnected(connection, code, reason),
      onProtocolProblem: () => {
        this.counters.badFrames++;
        this.metricsSink.badFrame();
      },
      logger: this.logger,
    });

    this.metricsSink.connectionOpened(info.protocol);
    const replaced = this.registry.set(connection);
    if (replaced) {
      this.logger.log(`${info.identity} connected again; closing its previous socket`);
      void replaced.rpc.close(1000, 'replaced by a newer connection');
    }
    connection.claimed = this.claimPresence(connection);
    // Without a hook, no promise chain per connection (it showed in reconnect storm profiles).
    const onConnected = this.listeners.onConnected;
    if (!onConnected) return;
    void Promise.resolve()
      .then(() => onConnected(this.infoOf(connection), connection.session))
      .catch((error) => this.logger.warn(`connect hook failed for ${info.identity}: ${String(error)}`));
  }

  private async dispatchInbound(call: InboundCall, info: ConnectionContext): Promise<Record<string, unknown>> {
    try {
      const reply = await this.handlers.dispatch(call.payload, {
        identity: info.identity,
        protocol: info.protocol,
        action: call.action,
        messageId: call.id,
        session: info.session,
        nodeId: this.nodeId,
        remoteAddress: info.remoteAddress,
      });
      this.metricsSink.inboundCall(info.protocol, this.actionLabel(call.action), 'ok');
      return reply;
    } catch (error) {
      const code = error instanceof OcppRpcError ? error.errorCode : 'InternalError';
      this.metricsSink.inboundCall(info.protocol, this.actionLabel(call.action), code);
      throw error;
    }
  }

  private async claimPresence(connection: LocalConnection): Promise<void> {
    try {
      const claim = await this.adapter.setPresence(connection.identity, connection.protocol, connection.connectedAt);
      this.metricsSink.presenceOperation('claim', 'ok');
      connection.epoch = claim.record.epoch;
      if (this.registry.get(connection.identity) !== connection) {
        // Closed (or replaced) while the claim was in flight: undo our claim if still ours.
        await this.adapter.removePresence(connection.identity, claim.record.epoch);
        return;
      }
      const previous = claim.previous;
      if (previous && previous.nodeId !== this.nodeId) {
        await this.adapter.publish(nodeChannel(previous.nodeId), {
          kind: 'evict',
          identity: connection.identity,
          epoch: previous.epoch,
          newOwner: this.nodeId,
        });
      }
    } catch (error) {
      this.metricsSink.presenceOperation('claim', 'error');
      // The transport re-registers local sockets (localPresence) once it is back.
      this.logger.warn(`presence claim for ${connection.identity} failed: ${errorMessage(error)}`);
    }
  }

  private onDisconnected(connection: LocalConnection, code: number, reason: string): void {
    const wasCurrent = this.registry.deleteIf(connection);
    this.metricsSink.connectionClosed(connection.protocol);
    // Drained sockets keep pointing here until they reconnect elsewhere, so commands for them
    // come to us and wait for the new owner instead of failing as not connected.
    const handedOver = this.drainedIdentities.has(connection.identity);
    if (connection.epoch > 0 && !handedOver) {
      const removal = this.adapter
        .removePresence(connection.identity, connection.epoch)
        .then(() => this.metricsSink.presenceOperation('remove', 'ok'))
        .catch((error) => {
          this.metricsSink.presenceOperation('remove', 'error');
          this.logger.warn(`presence removal for ${connection.identity} failed: ${String(error)}`);
        })
        .finally(() => this.presenceRemovals.delete(removal));
      this.presenceRemovals.add(removal);
    }
    // A socket replaced by a newer connection of the same charge point is not a disconnect.
    const onDisconnected = this.listeners.onDisconnected;
    if (!wasCurrent || !onDisconnected) return;
    void Promise.resolve()
      .then(() => onDisconnected({ ...this.infoOf(connection), code, reason }, connection.session))
      .catch((error) => this.logger.warn(`disconnect hook failed for ${connection.identity}: ${String(error)}`));
  }

  private localPresence(): PresenceRecord[] {
    return [...this.registry.values()].map((connection) => ({
      identity: connection.identity,
      nodeId: this.nodeId,
      epoch: connection.epoch,
      protocol: connection.protocol,
      connectedAt: connection.connectedAt,
    }));
  }

  private infoOf(connection: LocalConnection): ChargerInfo {
    return {
      identity: connection.identity,
      protocol: connection.protocol,
      nodeId: this.nodeId,
      connectedAt: new Date(connection.connectedAt).toISOString(),
    };
  }
}

/** A call for a charge point on another node, as the caller made it. */
interface RemoteCall {
  protocol: OcppProtocol | undefined;
  action: string;
  payload: Record<string, unknown>;
  timeoutMs: number;
  deadline: number;
}

/** What a connection's handlers keep of its upgrade. */
interface ConnectionContext {
  identity: string;
  protocol: OcppProtocol;
  session: unknown;
  remoteAddress?: string;
}

export interface DrainReport {
  closed: number;
  reconnectedElsewhere: number;
  durationMs: number;
}

const errorMessage = (error: unknown): string => (error as Error)?.message ?? String(error);

const invalidIdentityError = (identity: unknown): NotConnectedError => new NotConnectedError(String(identity), 'not a valid charge point identity');

/** How long an owner keeps trying to deliver a reply after the command's deadline. */
const REPLY_GRACE_MS = 1_000;
/** Bound on each clean-up step of stop(), so shutdown never hangs on a dead Redis. */
const STOP_STEP_TIMEOUT_MS = 2_000;

/** Marker: the command went on to another node, which will answer the caller itself. */
const FORWARDED: CommandOutcome = { status: 'failed', errorCode: 'FORWARDED', message: 'forwarded' };

function toChargerInfo(record: PresenceRecord): ChargerInfo {
  return {
    identity: record.identity,
    protocol: record.protocol,
    nodeId: record.nodeId,
    connectedAt: new Date(record.connectedAt).toISOString(),
  };
}
