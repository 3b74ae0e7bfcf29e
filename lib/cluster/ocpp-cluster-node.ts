import { randomUUID } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import type { WebSocket } from 'ws';
import { validateIdentity } from '../gateway/identity.js';
import {
  InvalidOptionsError,
  OcppClusterError,
  OcppRpcError,
  ClusterUnavailableError,
  InboxFullError,
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
import type { ConnectionInfo, UpgradeRequest, UpgradeVerdict } from '../gateway/ocpp-websocket-gateway.js';
import type { ResolvedOcppClusterOptions } from '../ocpp-cluster.options.js';
import { mapSettledBounded } from './bounded-all.js';
import { groupBy } from './group-by.js';
import type {
  BroadcastEnvelope,
  ClusterMessage,
  CommandEnvelope,
  CommandOutcome,
  EvictEnvelope,
} from './envelope.js';
import { BROADCAST_CHANNEL, nodeChannel } from './envelope.js';
import type { DeliveryInfo, EventAdapterInterface, LeaseChange, PresenceClaim, PresenceRecord } from './event-adapter.interface.js';
import type { HandlerRegistry } from './handler-registry.js';
import { LeaseGuard } from './lease-guard.js';
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
  /** OCPP 2.1 answers kept for retries, and the bytes counted against `retryCache.maxBytesPerNode`. */
  retryCache: { entries: number; bytes: number };
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
  /** OCPP 2.1 retries (same message id and payload) get their first answer again, also after a reconnect here. */
  private readonly answeredCalls: AnsweredCalls;
  private readonly owners: OwnerCache;
  private readonly lease: LeaseGuard;
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
    this.answeredCalls = new AnsweredCalls(options.retryCache);
    this.lease = new LeaseGuard(this.nodeId, adapter);
  }

  /** Joins the cluster, then opens the gateway (on `httpServer`, or its own port). Returns the own port if any. */
  async start(httpServer?: HttpServer): Promise<number | undefined> {
    if (this.options.port === undefined && !httpServer) {
      throw new InvalidOptionsError('port', 'no HTTP server to attach to: give a port, or start the node inside a Nest HTTP application');
    }
    this.knownActions = new Set(this.options.protocols.flatMap((protocol) => this.validator?.actions(protocol) ?? []));
    await this.adapter.connect(this.nodeId, {
      localPresence: () => this.localPresence(),
      onLeaseChange: (change) => this.onLeaseChange(change),
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
    await this.adapter.subscribe(nodeChannel(this.nodeId), (message, delivery) => this.onClusterMessage(message, delivery));
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
      beforeUpgrade: (request) => this.claimBeforeUpgrade(request),
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
    // A command already in another node's inbox may still be delivered: its caller hears the
    // owner's answer (or the timeout at its deadline), never "failed" while it can still happen.
    // Only with the transport down is there nothing to wait for.
    if (this.remoteCalls.size > 0 && this.adapter.isHealthy()) {
      await settleWithin(this.remoteCalls.idle(), this.options.callTimeoutMs + REPLY_GRACE_MS);
    }
    this.remoteCalls.failAll(() => new NodeShuttingDownError());
    this.answeredCalls.clear();
    await this.leaveCluster();
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  get isDraining(): boolean {
    return this.drainPromise !== null;
  }

  /**
   * Liveness: false once this node knows it lost its authority (another process holds its id,
   * or it was taken over and has not rejoined yet). A lease that merely cannot be proven (Redis
   * unreachable) keeps the node live: restarting it would not bring Redis back.
   */
  liveness(): { live: true } | { live: false; reason: string } {
    switch (this.lease.state) {
      case 'lost':
        return { live: false, reason: 'node id held by another process' };
      case 'fenced':
        return { live: false, reason: 'taken over while its lease had lapsed; rejoining' };
      default:
        return { live: true };
    }
  }

  /** Whether the gateway takes new charge points now, and why not. */
  acceptance(): { ok: true } | { ok: false; status: number; reason: string } {
    if (this.stopping) return { ok: false, status: 503, reason: 'shutting down' };
    if (this.lease.state !== 'held') return { ok: false, status: 503, reason: `lease ${this.lease.state}` };
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
    this.noteRefusal(verdict.ok ? null : verdict);
    return verdict;
  }

  /** Logs when the node starts and stops refusing charge points (once per change of reason). */
  private noteRefusal(refusal: { status: number; reason: string } | null): void {
    const reason = refusal?.reason ?? null;
    if (reason === this.lastRefusal) return;
    this.lastRefusal = reason;
    if (refusal) this.logger.warn(`refusing new charge points with ${refusal.status}: ${refusal.reason}`);
    else this.logger.log('accepting new charge points again');
  }

  /**
   * Claims the identity before the handshake completes, so that epochs follow handshake order:
   * a charge point that saw its socket open here and then connects elsewhere always ends up
   * with the newer claim there. When the claim fails (Redis unreachable or refusing writes) the
   * upgrade gets 503 like any upgrade while the transport is down; with
   * `refuseUpgradesWhileTransportDown: false` it is accepted unclaimed and the transport
   * registers it as soon as it can (see RedisAdapter: failed claims are retried).
   */
  private async claimBeforeUpgrade(request: UpgradeRequest): Promise<UpgradeVerdict> {
    const connectedAt = Date.now();
    try {
      const claim = await this.adapter.setPresence(request.identity, request.protocol, connectedAt);
      this.metricsSink.presenceOperation('claim', 'ok');
      const ticket: PresenceTicket = { claim, connectedAt };
      return { accept: true, ticket, release: () => this.removePresence(request.identity, claim.record.epoch) };
    } catch (error) {
      this.metricsSink.presenceOperation('claim', 'error');
      if (this.options.refuseUpgradesWhileTransportDown) {
        const refusal = { status: 503, reason: `presence claim failed: ${errorMessage(error)}` };
        this.noteRefusal(refusal);
        return { accept: false, ...refusal };
      }
      this.logger.warn(`presence claim for ${request.identity} failed: ${errorMessage(error)}; accepted unclaimed, registered once the transport can`);
      const ticket: PresenceTicket = { claim: null, connectedAt };
      return { accept: true, ticket };
    }
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
      // A stalled Redis must not hold the drain past its settle time.
      const lookup = this.adapter.getPresenceBatch(identities).catch(() => new Map<string, PresenceRecord>());
      const owners = (await settleWithin(lookup, Math.max(1, settleUntil - Date.now()))) ?? new Map<string, PresenceRecord>();
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
      this.remoteCalls.fail(command.id, publishFailure(error));
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
        const doubt = owner ? null : this.adapter.presenceDoubt?.();
        const error = doubt ? new ClusterUnavailableError(`cannot tell whether ${identity} is connected: ${doubt}`) : new NotConnectedError(identity);
        outcomes.set(identity, Promise.resolve({ identity, status: 'rejected', error }));
        continue;
      }
      const command = this.commandFor(identity, undefined, action, payload, deadline);
      track(identity, this.remoteCalls.wait(command.id, { identity, action, timeoutMs, deadline }));
      batch.push({ channel: nodeChannel(owner.nodeId), message: command });
    }
    this.counters.remoteSent += batch.length;
    // One publish per owner: a node that refuses (a full inbox) or fails fails only its own
    // commands; the others were appended and will run, so their callers must not hear otherwise.
    await Promise.all(
      [...groupBy(batch, ({ channel }) => channel).values()].map((list) =>
        this.adapter.publishBatch(list).catch((error) => {
          for (const { message } of list) this.remoteCalls.fail((message as CommandEnvelope).id, publishFailure(error));
        }),
      ),
    );
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
      retryCache: { entries: this.answeredCalls.size, bytes: this.answeredCalls.bytes },
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
    gate?: CallGate,
  ): Promise<Record<string, unknown>> {
    if (protocol && protocol !== connection.protocol) {
      return Promise.reject(new ProtocolMismatchError(connection.identity, protocol, connection.protocol));
    }
    // The deadline decides; timeoutMs only has to be a valid positive number.
    return connection.rpc.call(action, payload, { deadline, timeoutMs: Math.max(1, deadline - Date.now()), ...gate });
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
      this.remoteCalls.fail(command.id, publishFailure(error));
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

  private onClusterMessage(message: ClusterMessage, delivery?: DeliveryInfo): void | Promise<void> {
    switch (message.kind) {
      case 'command':
        return delivery?.redelivered ? this.onRedeliveredCommand(message) : this.onCommand(message);
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
    const incarnation = this.lease.incarnation;
    const outcome = this.runCommand(command, incarnation);
    return outcome
      .then((result) => (result.status === 'failed' && result.errorCode === LEASE_LOST_CODE ? this.afterSuspension() : result))
      .then((result) => (result && this.lease.mayAnswer(incarnation) ? this.reply(command, result) : undefined))
      .finally(() => {
        this.activeCommands--;
      });
  }

  /**
   * A command an earlier process of this node had read (it crashed, restarted or was taken
   * over): it may have reached the charge point, so it is answered as such and never sent again.
   */
  private onRedeliveredCommand(command: CommandEnvelope): Promise<void> {
    return this.reply(command, {
      status: 'notConnected',
      reason: `node ${this.nodeId} restarted while handling the command`,
      maybeDelivered: true,
    });
  }

  /**
   * A command refused because the lease could not be proven. Taken back with nobody having
   * taken the node over: tell the caller it was not sent. Taken over: the survivor answered it.
   */
  private async afterSuspension(): Promise<CommandOutcome | null> {
    const end = await this.lease.suspensionEnd();
    if (end === 'fenced') return null;
    return {
      status: 'failed',
      errorCode: new ClusterUnavailableError('').code,
      message: `not sent: node ${this.nodeId} could not prove its lease (Redis stalled or unreachable)`,
    };
  }

  private onLeaseChange(change: LeaseChange): void {
    const state = this.lease.apply(change);
    if (change === 'suspended') this.logger.warn(`lease suspended: nothing read from the cluster is sent to charge points until it is proven again`);
    else if (change === 'resumed') this.logger.log('lease proven again; serving commands');
    else if (change === 'rejoined') this.logger.log('rejoined the cluster under a fresh lease');
    if (change !== 'fenced' && change !== 'lost') return;
    this.logger.error(
      state === 'lost'
        ? 'another process holds this node id: closing every charge point socket (1012); this node is not live'
        : 'this node was taken over while its lease had lapsed: closing every charge point socket (1012) so they reconnect to live nodes',
    );
    this.owners.clear();
    for (const connection of this.registry.values()) {
      void connection.rpc.close(1012, 'service restart').catch(() => undefined);
    }
  }

  private runCommand(command: CommandEnvelope, incarnation: number): Promise<CommandOutcome> {
    if (Date.now() >= command.deadline) return Promise.resolve({ status: 'timeout', sent: false });
    const connection = this.servingConnection(command.identity);
    if (!connection) return this.forwardOrGiveUp(command, incarnation);
    if (command.fireAndForget) {
      if (!this.lease.mayWrite(incarnation)) return Promise.resolve(outcomeFromError(this.lease.refusal()));
      try {
        connection.rpc.sendMessage(command.action, command.payload);
        return Promise.resolve({ status: 'result', payload: {} });
      } catch (error) {
        return Promise.resolve(outcomeFromError(error));
      }
    }
    return this.callLocal(connection, command.protocol, command.action, command.payload, command.deadline, this.gateFor(incarnation)).then(
      (payload): CommandOutcome => ({ status: 'result', payload }),
      (error): CommandOutcome => outcomeFromError(error),
    );
  }

  /** Writing a command read in `incarnation` to a socket is allowed only while the lease is proven. */
  private gateFor(incarnation: number): CallGate {
    return { mayWrite: () => this.lease.mayWrite(incarnation), refusal: () => this.lease.refusal() };
  }

  /** The charge point moved after the caller looked it up: follow it while the deadline allows. */
  private async forwardOrGiveUp(command: CommandEnvelope, incarnation: number): Promise<CommandOutcome> {
    const hops = command.hops ?? 0;
    let owner: PresenceRecord | null = null;
    if (hops < MAX_HOPS) {
      try {
        owner = await this.adapter.getPresence(command.identity);
      } catch (error) {
        // Not knowing where it is is not "not connected".
        return outcomeFromError(error instanceof OcppClusterError ? error : new ClusterUnavailableError(errorMessage(error)));
      }
    }
    if (owner?.nodeId === this.nodeId && this.drainedIdentities.has(command.identity)) {
      owner = await this.awaitNewOwner(command.identity, command.deadline);
    }
    if (!owner || owner.nodeId === this.nodeId || Date.now() >= command.deadline) {
      return { status: 'notConnected' };
    }
    // Forwarding is a write of what we read: after a takeover its caller was answered already.
    if (!this.lease.mayWrite(incarnation)) return outcomeFromError(this.lease.refusal());
    try {
      await this.adapter.publish(nodeChannel(owner.nodeId), { ...command, hops: hops + 1 });
      return FORWARDED;
    } catch (error) {
      // A full inbox refused it: the caller hears that, typed (never sent).
      if (error instanceof InboxFullError) return outcomeFromError(error);
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
    const gate = message.origin === this.nodeId ? undefined : this.gateFor(this.lease.incarnation);
    const results = await mapSettledBounded(targets, this.options.broadcastConcurrency, (connection) =>
      this.callLocal(connection, undefined, message.action, message.payload, message.deadline, gate),
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
    // Sockets are registered with the epoch they claimed before their handshake completed.
    if (!connection || connection.epoch > message.epoch) return;
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
    const ticket = connectionInfo.ticket as PresenceTicket | undefined;
    const claim = ticket?.claim ?? null;
    const epoch = claim?.record.epoch ?? 0;
    const current = this.registry.get(info.identity);
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
    const previous = claim?.previous;
    if (previous && previous.nodeId !== this.nodeId) this.evictElsewhere(connection.identity, previous);
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

  /** Tells the node that held the identity before our claim to close its (older) socket. */
  private evictElsewhere(identity: string, previous: PresenceRecord): void {
    this.adapter
      .publish(nodeChannel(previous.nodeId), { kind: 'evict', identity, epoch: previous.epoch, newOwner: this.nodeId })
      .catch((error) => this.logger.warn(`telling ${previous.nodeId} to close its socket of ${identity} failed: ${errorMessage(error)}`));
  }

  private onDisconnected(connection: LocalConnection, code: number, reason: string): void {
    const wasCurrent = this.registry.deleteIf(connection);
    this.metricsSink.connectionClosed(connection.protocol);
    // Drained sockets keep pointing here until they reconnect elsewhere, so commands for them
    // come to us and wait for the new owner instead of failing as not connected.
    const handedOver = this.drainedIdentities.has(connection.identity);
    // Epoch 0 (accepted unclaimed): the transport knows the epoch it registered it under, if any.
    if ((connection.epoch > 0 || wasCurrent) && !handedOver) this.removePresence(connection.identity, connection.epoch);
    // A socket replaced by a newer connection of the same charge point is not a disconnect.
    const onDisconnected = this.listeners.onDisconnected;
    if (!wasCurrent || !onDisconnected) return;
    void Promise.resolve()
      .then(() => onDisconnected({ ...this.infoOf(connection), code, reason }, connection.session))
      .catch((error) => this.logger.warn(`disconnect hook failed for ${connection.identity}: ${String(error)}`));
  }

  /** Removes our entry if (node, epoch) still own it; stop() waits for these. */
  private removePresence(identity: string, epoch: number): void {
    const removal = this.adapter
      .removePresence(identity, epoch)
      .then(() => this.metricsSink.presenceOperation('remove', 'ok'))
      .catch((error) => {
        this.metricsSink.presenceOperation('remove', 'error');
        this.logger.warn(`presence removal for ${identity} failed: ${String(error)}`);
      })
      .finally(() => this.presenceRemovals.delete(removal));
    this.presenceRemovals.add(removal);
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

/** What the claim before the upgrade hands to the connection (claim null: accepted unclaimed). */
interface PresenceTicket {
  claim: PresenceClaim | null;
  connectedAt: number;
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

/** What the caller of a command whose publish failed is told: our typed errors as they are (a full inbox says `sent: false`). */
function publishFailure(error: unknown): OcppClusterError {
  return error instanceof OcppClusterError ? error : new ClusterUnavailableError(errorMessage(error));
}

const invalidIdentityError = (identity: unknown): NotConnectedError => new NotConnectedError(String(identity), 'not a valid charge point identity');

/** How long an owner keeps trying to deliver a reply after the command's deadline. */
const REPLY_GRACE_MS = 1_000;
const LEASE_LOST_CODE = 'OCPP_LEASE_LOST';

/** Fencing for one call: checked right before its frame is written. */
interface CallGate {
  mayWrite: () => boolean;
  refusal: () => Error;
}
/** Bound on each clean-up step of stop(), so shutdown never hangs on a dead Redis. */
const STOP_STEP_TIMEOUT_MS = 2_000;
/** Bound on leaving the cluster (unsubscribe, release liveness, clean keys) at shutdown. */
const LEAVE_TIMEOUT_MS = 5_000;

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
