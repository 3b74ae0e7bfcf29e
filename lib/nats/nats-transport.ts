import { AckPolicy, DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { performance } from 'node:perf_hooks';
import { connect, type ConnectionOptions, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { isAllNodes, type Address, type NodeAddress, type Subscription as ClusterSubscription } from '../cluster/address.js';
import type { ClusterMessage } from '../cluster/envelope.js';
import type {
  AdapterMetrics,
  ClusterMessageHandler,
  EventAdapterInterface,
  LostNodeClaim,
  PresenceClaim,
  PresenceRecord,
  PresenceRestore,
  PresenceSnapshotSource,
  TransportProbe,
} from '../cluster/event-adapter.interface.js';
import { plainData } from '../cluster/lease-keeper-thread.js';
import type { ClusterLogger } from '../cluster/logger.js';
import { beforeDeadline, settleWithin, sleep } from '../cluster/time-bounds.js';
import { ClusterUnavailableError, InboxFullError, InvalidOptionsError, NodeLaneMissingError } from '../protocol/errors.js';
import type { OcppProtocol } from '../protocol/protocol.js';
import { casMayBeOvertaken, overtakenCasWarning } from './cas-confirmation.js';
import { NotAnsweredYetError, retryWhileUnanswered } from './connect-retry.js';
import { decodeNatsMessage, encodeNatsMessage } from './message-codec.js';
import { isConsumerNotFound, isNoStream, isStreamNotFound, jsErrorCode, JS_MAXIMUM_MESSAGES_EXCEEDED, natsUnavailable } from './nats-errors.js';
import { DEFAULT_NATS_PREFIX, NatsNames, nodeIdProblem, READER } from './nats-names.js';
import { NatsNodeLiveness, type NatsLeaseEvent } from './node-liveness.js';
import { NatsNodeLoss } from './node-loss-primitives.js';
import { PresenceBucket } from './presence-bucket.js';
import { StreamReader } from './stream-reader.js';

export interface NatsTransportOptions {
  /** A connection the user built: used as given, never closed by us. One of `connection` and `servers`. */
  connection?: NatsConnection;
  /** Server URLs to build our own connection from (closed by us), e.g. `nats://127.0.0.1:4222`. */
  servers?: string | string[];
  /** Extra options for the connection we build (user/pass, token, authenticator, tls, name...). */
  connectionOptions?: Omit<ConnectionOptions, 'servers'>;
  /** Prefix of every stream, bucket and subject (default `ocpp-cluster`; A-Z a-z 0-9 _ -). */
  prefix?: string;
  /** A node not heard from for this long counts as dead; it beats every third of it (default 5000). */
  nodeTtlMs?: number;
  /** How often the cluster layer looks for lost nodes to take over (default 1000). */
  takeoverIntervalMs?: number;
  /**
   * Cap on this node's inbox stream: commands not yet acknowledged. A command for a node whose
   * inbox is full is refused with `InboxFullError` (never stored, never trimmed; default 10000).
   */
  inboxMaxMessages?: number;
  /** Messages pulled at once (default 100). */
  readBatchSize?: number;
  /** Inbox handlers running at once before pulling pauses (default 1000); replies are read apart. */
  maxInFlight?: number;
  /** Ack deadline of the durable consumers, renewed while a handler runs (default 30000). */
  ackWaitMs?: number;
  /** Bound on each JetStream request and publish (default 5000). */
  requestTimeoutMs?: number;
  /**
   * How long connect() keeps trying to make or open the buckets, the node's record and its streams
   * while JetStream does not answer in time or is not ready (a replicated stream's creation answered
   * late, leaders being elected after a restart); then ClusterUnavailableError (default 30000; 0: one try).
   */
  connectTimeoutMs?: number;
  /** Replicas of every stream and bucket (a clustered NATS; default 1). */
  replicas?: number;
  /**
   * How long a worker thread of the node (the lease keeper) beats for it while its event loop does
   * not turn (default 30000; 0: no thread, only the event loop beats). It beats only while the event
   * loop's own heartbeat is overdue, on a connection of its own built from this transport's settings
   * (`servers` and `connectionOptions`, or the given `connection`'s options) as plain data: functions,
   * such as an `authenticator`, are left out.
   */
  stallToleranceMs?: number;
  logger?: ClusterLogger;
}

type State = 'idle' | 'connecting' | 'connected' | 'conflict' | 'closing' | 'closed';
/** What a presence entry's node is, as far as a caller may judge (see ownerState). */
type OwnerState = 'alive' | 'lapsed' | 'gone';

const STEP_TIMEOUT_MS = 2000;
const NODES_BUCKET_MAX_AGE_MS = 24 * 3600_000;
const DEFAULT_LOGGER: ClusterLogger = {
  log: (message) => console.log(`[nats] ${message}`),
  warn: (message) => console.warn(`[nats] ${message}`),
  error: (message) => console.error(`[nats] ${message}`),
};

const nanos = (ms: number): number => ms * 1_000_000;

/** What ensureStreams did in attempts that failed midway (a request whose answer came too late). */
interface StreamSetupMemory {
  /** Streams it asked to add: found afterwards, they are new all the same. */
  added: Set<string>;
  /** Per stream: how far the previous consumer had delivered, read before it was deleted. */
  delivered: Map<string, number>;
}

/**
 * The NATS JetStream cluster transport: node inboxes on per-node work-queue streams read through a
 * durable pull consumer (explicit acks; answers to the node's own calls on a replies stream of its
 * own), core NATS for broadcasts, presence in a KV bucket with compare-and-set on revisions, node
 * liveness as heartbeat revisions judged by readers (see NatsNodeLiveness), and the node-loss
 * primitives (NatsNodeLoss: fence and drain a lost node; the policy is cluster/node-loss.ts).
 * README "NATS transport".
 */
export class NatsTransport implements EventAdapterInterface {
  readonly name = 'nats';
  readonly names: NatsNames;
  private readonly logger: ClusterLogger;
  private readonly nodeTtlMs: number;
  private readonly takeoverIntervalMs: number;
  private readonly inboxMaxMessages: number;
  private readonly readBatchSize: number;
  private readonly maxInFlight: number;
  private readonly ackWaitMs: number;
  private readonly requestTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly replicas: number;
  private readonly stallToleranceMs: number;
  private readonly ownsConnection: boolean;

  private state: State = 'idle';
  private nc: NatsConnection | null;
  private js: JetStreamClient | null = null;
  private jsm: JetStreamManager | null = null;
  private presenceKv: KV | null = null;
  private nodesKv: KV | null = null;
  private readonly presence: PresenceBucket;
  private nodeId: string | null = null;
  private source: PresenceSnapshotSource | null = null;
  private liveness: NatsNodeLiveness | null = null;
  private nodeLoss: NatsNodeLoss | null = null;
  private inbox: StreamReader | null = null;
  private replies: StreamReader | null = null;
  private inboxHandler: ClusterMessageHandler | null = null;
  private broadcastSub: Subscription | null = null;
  private disconnected = false;
  /** Aborted by disconnect()/abort() while connect() is under way: it stops trying. */
  private joining: AbortController | null = null;
  /** What connect() is making or opening now, to name what did not answer. */
  private joiningStep = 'the JetStream API (account info)';
  private recovering: Promise<void> | null = null;
  private recoverAgain = false;
  private rejoining: Promise<void> | null = null;
  /** Per stream: sequences up to this were read by an earlier incarnation (handed over as redelivered). */
  private readonly readBefore = new Map<string, number>();
  private readonly unregistered = new Set<string>();
  private registrationRetry: NodeJS.Timeout | null = null;
  private lastNumbers = { ackPending: 0, pending: 0, redelivered: 0, length: 0 };
  private readonly counters = {
    sent: 0,
    sendFailures: 0,
    commandsRefused: 0,
    broadcastsSent: 0,
    broadcastsReceived: 0,
    broadcastHandlerErrors: 0,
    malformedBroadcasts: 0,
    recoveries: 0,
    rehydrated: 0,
    rehydrateRefused: 0,
    evictsSent: 0,
    rejoins: 0,
    /** Rejoin attempts put off because a survivor had not finished taking this node over. */
    fenceWaits: 0,
    disconnects: 0,
    reconnects: 0,
  };

  constructor(options: NatsTransportOptions) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('nats', 'must be an object');
    const sources = (['connection', 'servers'] as const).filter((name) => options[name] !== undefined);
    if (sources.length !== 1) throw new InvalidOptionsError('nats', `give exactly one of connection and servers (got ${sources.join(' and ') || 'neither'})`);
    if (options.connection !== undefined && (typeof options.connection !== 'object' || typeof options.connection.publish !== 'function')) {
      throw new InvalidOptionsError('connection', 'must be a NatsConnection (from @nats-io/transport-node connect())');
    }
    if (options.servers !== undefined) {
      const list = Array.isArray(options.servers) ? options.servers : [options.servers];
      if (list.length === 0 || list.some((server) => typeof server !== 'string' || server.length === 0)) {
        throw new InvalidOptionsError('servers', 'must be a non-empty URL or list of URLs');
      }
    }
    if (options.logger !== undefined && (typeof options.logger !== 'object' || typeof options.logger.warn !== 'function')) {
      throw new InvalidOptionsError('logger', 'must have log, warn and error methods');
    }
    this.names = new NatsNames(options.prefix ?? DEFAULT_NATS_PREFIX);
    this.nodeTtlMs = integerOption('nodeTtlMs', options.nodeTtlMs, 5000, 300, 600_000);
    this.takeoverIntervalMs = integerOption('takeoverIntervalMs', options.takeoverIntervalMs, 1000, 50, 60_000);
    this.inboxMaxMessages = integerOption('inboxMaxMessages', options.inboxMaxMessages, 10_000, 10, 10_000_000);
    this.readBatchSize = integerOption('readBatchSize', options.readBatchSize, 100, 1, 10_000);
    this.maxInFlight = integerOption('maxInFlight', options.maxInFlight, 1000, 1, 1_000_000);
    this.ackWaitMs = integerOption('ackWaitMs', options.ackWaitMs, 30_000, 1000, 3_600_000);
    this.requestTimeoutMs = integerOption('requestTimeoutMs', options.requestTimeoutMs, 5000, 100, 120_000);
    this.connectTimeoutMs = integerOption('connectTimeoutMs', options.connectTimeoutMs, 30_000, 0, 600_000);
    this.replicas = integerOption('replicas', options.replicas, 1, 1, 5);
    this.stallToleranceMs = integerOption('stallToleranceMs', options.stallToleranceMs, 30_000, 0, 3_600_000);
    this.logger = options.logger ?? DEFAULT_LOGGER;
    this.nc = options.connection ?? null;
    this.ownsConnection = options.connection === undefined;
    this.connectOptions = { ...options.connectionOptions, servers: options.servers };
    this.presence = new PresenceBucket(
      () => this.requireKv(this.presenceKv),
      () => casMayBeOvertaken(this.nc?.info),
    );
  }

  private readonly connectOptions: ConnectionOptions;

  /** The connection in use (the user's, or ours once connected). */
  get connection(): NatsConnection | null {
    return this.nc;
  }

  // ---------------------------------------------------------------- membership

  async connect(nodeId: string, source: PresenceSnapshotSource): Promise<void> {
    if (this.state !== 'idle') throw new ClusterUnavailableError(`adapter is ${this.state}, connect() works once`);
    const problem = nodeIdProblem(nodeId);
    if (problem) throw new InvalidOptionsError('nodeId', problem);
    if (!source || typeof source.localPresence !== 'function') throw new InvalidOptionsError('source', 'must have a localPresence() method');
    this.state = 'connecting';
    this.nodeId = nodeId;
    this.source = source;
    const joining = (this.joining = new AbortController());
    try {
      if (!this.nc) {
        this.disconnected = false;
        this.nc = await connect({ maxReconnectAttempts: -1, reconnectTimeWait: 250, pingInterval: 5000, ...this.connectOptions, name: this.connectOptions.name ?? `ocpp-cluster ${nodeId}` });
      }
      const nc = this.nc;
      this.watchStatus(nc);
      const casWarning = overtakenCasWarning(nc.info, this.replicas);
      if (casWarning) this.logger.warn(casWarning);
      this.js = jetstream(nc, { timeout: this.requestTimeoutMs });
      const liveness = new NatsNodeLiveness({
        kv: () => this.requireKv(this.nodesKv),
        nodeId,
        ttlMs: this.nodeTtlMs,
        logger: this.logger,
        onLeaseEvent: (event) => this.onLeaseEvent(event),
        stallToleranceMs: this.stallToleranceMs,
        keeper: { bucket: this.names.nodesBucket, requestTimeoutMs: this.requestTimeoutMs, connection: () => this.keeperConnection(nc, nodeId) },
      });
      this.liveness = liveness;
      // Kept across attempts: what a timed-out attempt did is found, not made twice (see ensureStreams).
      const setup: StreamSetupMemory = { added: new Set(), delivered: new Map() };
      let acquired: { deliveredSeq?: number } | null = null;
      await retryWhileUnanswered(
        async () => {
          this.joiningStep = 'the JetStream API (account info)';
          this.jsm = await jetstreamManager(nc, { timeout: this.requestTimeoutMs });
          await this.ensureBuckets();
          this.joiningStep = `node ${nodeId}'s record in bucket ${this.names.nodesBucket}`;
          if (acquired && !liveness.hasLease()) {
            // Joining outlived the lease an earlier attempt took (no heartbeats yet): a survivor may
            // have fenced the node meanwhile, and its streams must not be reopened under that fence.
            await liveness.beat();
            if (!liveness.isHeld) acquired = null; // the record was taken: take it back, as a restart does
            else if (!liveness.hasLease()) throw new NotAnsweredYetError('heartbeat not answered');
          }
          acquired ??= await liveness.acquire();
          await this.ensureStreams(nodeId, acquired.deliveredSeq ?? 0, setup);
        },
        { budgetMs: this.connectTimeoutMs, stop: joining.signal, logger: this.logger, location: () => this.location(), step: () => this.joiningStep },
      );
    } catch (error) {
      // disconnect()/abort() meanwhile leaves the adapter closed; a failure alone lets connect() be called again.
      if (this.state === 'connecting') this.state = 'idle';
      this.liveness?.abandon();
      this.liveness = null;
      if (this.ownsConnection) {
        await this.closeOwnConnection();
        // The next connect() builds a new one (a closed connection never opens again).
        this.nc = null;
      }
      throw this.unavailable(error);
    } finally {
      this.joining = null;
    }
    this.liveness.start();
    this.nodeLoss = new NatsNodeLoss({
      names: this.names,
      selfId: nodeId,
      nodesKv: () => this.requireKv(this.nodesKv),
      jsm: () => this.jsm!,
      liveness: this.liveness,
      presence: this.presence,
      batchSize: this.readBatchSize,
    });
    this.state = 'connected';
  }

  async disconnect(): Promise<void> {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.joining?.abort();
    const wasMember = this.state === 'connected' || this.state === 'conflict';
    if (this.nc && (this.nc.isClosed() || this.disconnected)) {
      if (wasMember) this.logger.warn('leaving the cluster without clean-up: NATS is unreachable');
      this.abort();
      return;
    }
    this.state = 'closing';
    this.stopTimers();
    await Promise.all([this.inbox?.stop(), this.replies?.stop()]);
    if (wasMember && this.liveness?.isHeld) await this.leave();
    this.liveness?.abandon();
    this.broadcastSub?.unsubscribe();
    this.broadcastSub = null;
    this.inbox = null;
    this.replies = null;
    if (this.ownsConnection) await this.closeOwnConnection();
    this.state = 'closed';
  }

  /**
   * Drops everything at once, as a crash would: no `nodeLeft`, nothing acknowledged or removed.
   * The record stops beating; a survivor judges the node dead after its TTL and takes it over.
   */
  abort(): void {
    if (this.state === 'closed') return;
    this.joining?.abort();
    this.state = 'closed';
    this.stopTimers();
    this.inbox?.abort();
    this.replies?.abort();
    this.liveness?.abandon();
    try {
      this.broadcastSub?.unsubscribe();
    } catch {
      // the connection is already closed
    }
    this.broadcastSub = null;
    if (this.ownsConnection) void this.closeOwnConnection();
  }

  /** Clean leave: presence we own goes, then the streams and the record (or `left` when messages wait), then the announcement. */
  private async leave(): Promise<void> {
    const nodeId = this.nodeId!;
    await bounded(
      Promise.all(this.localRecords().map((record) => this.presence.remove(record.identity, nodeId, record.epoch).catch(() => false))),
    );
    await bounded(
      (async () => {
        const inboxEmpty = await this.streamEmpty(this.names.inboxStream(nodeId));
        if (inboxEmpty) {
          for (const stream of [this.names.inboxStream(nodeId), this.names.repliesStream(nodeId)]) {
            await this.jsm!.streams.delete(stream).catch(() => undefined);
          }
        }
        await this.liveness!.release(inboxEmpty);
      })(),
    );
    // Last, so that a survivor poked by it finds the final state.
    await bounded(
      (async () => {
        this.nc!.publish(this.names.broadcastSubject, encodeNatsMessage({ kind: 'nodeLeft', nodeId }));
        await this.nc!.flush();
      })(),
    );
  }

  private async streamEmpty(stream: string): Promise<boolean> {
    try {
      return (await this.jsm!.streams.info(stream)).state.messages === 0;
    } catch (error) {
      if (isStreamNotFound(error)) return true;
      throw error;
    }
  }

  /** The settings of the lease keeper's own connection, as plain data (see `stallToleranceMs`). */
  private keeperConnection(nc: NatsConnection, nodeId: string): Record<string, unknown> {
    const given = this.ownsConnection ? this.connectOptions : (nc as { options?: ConnectionOptions }).options;
    const options = plainData(given ?? {}) as Record<string, unknown>;
    if (options.servers === undefined) options.servers = nc.getServer();
    const name = typeof options.name === 'string' ? options.name : `ocpp-cluster ${nodeId}`;
    return { ...options, name: `${name}:lease-keeper` };
  }

  // ---------------------------------------------------------------- NATS objects

  private async ensureBuckets(): Promise<void> {
    const kvm = new Kvm(this.js!);
    const storage = StorageType.File;
    // Every read from the bucket's leader: a direct get may be answered by any replica, and one that
    // is catching up after a restart answers with what it had (a charge point not connected, a
    // node's old heartbeat) — presence and leases decided on that would be untrue.
    const allow_direct = false;
    // Kvm.create looks the bucket up first: a bucket a timed-out attempt did make is opened, not made again.
    this.joiningStep = `bucket ${this.names.presenceBucket}`;
    this.presenceKv = await kvm.create(this.names.presenceBucket, { history: 1, replicas: this.replicas, storage, allow_direct });
    // Entries nobody rewrote for a day (fenced or abandoned nodes) go by themselves; a live node rewrites every third of its TTL.
    this.joiningStep = `bucket ${this.names.nodesBucket}`;
    this.nodesKv = await kvm.create(this.names.nodesBucket, { history: 1, replicas: this.replicas, storage, allow_direct, ttl: NODES_BUCKET_MAX_AGE_MS });
  }

  /**
   * Creates (or reopens after a takeover closed them) this node's inbox and replies streams and a
   * fresh durable consumer on each. Whatever the previous consumer had delivered and nobody
   * acknowledged is handed over again as redelivered (it may have reached the charge point).
   * `setup` carries over from an attempt that failed midway (connect() tries again): a stream it
   * asked to add and now finds is new all the same, and a consumer it read before deleting keeps
   * what it had delivered.
   */
  private async ensureStreams(nodeId: string, fencedDeliveredSeq: number, setup: StreamSetupMemory = { added: new Set(), delivered: new Map() }): Promise<void> {
    const jsm = this.jsm!;
    const streams: Array<{ config: Partial<StreamConfig> & { name: string; subjects: string[] }; readBefore: number }> = [
      { config: { name: this.names.inboxStream(nodeId), subjects: [this.names.inboxSubject(nodeId)], max_msgs: this.inboxMaxMessages }, readBefore: fencedDeliveredSeq },
      { config: { name: this.names.repliesStream(nodeId), subjects: [this.names.repliesSubject(nodeId)], max_msgs: -1 }, readBefore: 0 },
    ];
    for (const { config, readBefore } of streams) {
      const full: Partial<StreamConfig> & { name: string } = {
        ...config,
        retention: RetentionPolicy.Workqueue,
        discard: DiscardPolicy.New,
        storage: StorageType.File,
        num_replicas: this.replicas,
      };
      this.joiningStep = `stream ${config.name}`;
      let existed = !setup.added.has(config.name);
      try {
        await jsm.streams.info(config.name);
        await jsm.streams.update(config.name, { subjects: config.subjects, max_msgs: config.max_msgs });
      } catch (error) {
        if (!isStreamNotFound(error)) throw error;
        setup.added.add(config.name);
        await jsm.streams.add(full);
        existed = false;
      }
      this.joiningStep = `consumer ${READER} of stream ${config.name}`;
      try {
        const seen = (await jsm.consumers.info(config.name, READER)).delivered.stream_seq;
        setup.delivered.set(config.name, Math.max(seen, setup.delivered.get(config.name) ?? 0));
        await jsm.consumers.delete(config.name, READER);
      } catch (error) {
        if (!isConsumerNotFound(error)) throw error;
      }
      const delivered = setup.delivered.get(config.name) ?? 0;
      await jsm.consumers.add(config.name, {
        durable_name: READER,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: nanos(this.ackWaitMs),
        max_ack_pending: -1,
        max_deliver: -1,
      });
      // A stream made anew (a takeover finished and deleted it, or NATS lost it) starts its sequences over.
      this.readBefore.set(config.name, existed ? Math.max(delivered, readBefore) : 0);
    }
  }

  // ---------------------------------------------------------------- messaging

  async publish(to: Address, message: ClusterMessage): Promise<void> {
    if (isAllNodes(to)) {
      const nc = this.requireConnection();
      try {
        nc.publish(this.names.broadcastSubject, encodeNatsMessage(message));
        this.counters.broadcastsSent++;
      } catch (error) {
        throw this.unavailable(error);
      }
      return;
    }
    await this.sendTo(checkedAddress(to), message);
  }

  /** Every message is published at once on one connection, so each node's lanes keep their order. */
  async publishBatch(messages: ReadonlyArray<{ to: Address; message: ClusterMessage }>): Promise<void> {
    const results = await Promise.allSettled(messages.map(({ to, message }) => this.publish(to, message)));
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) throw failed.reason;
  }

  async subscribe(subscription: ClusterSubscription, handler: ClusterMessageHandler): Promise<void> {
    if (typeof handler !== 'function') throw new InvalidOptionsError('handler', 'must be a function');
    const nodeId = this.requireConnected();
    if (subscription === 'allNodes') {
      this.broadcastSub?.unsubscribe();
      this.broadcastSub = this.nc!.subscribe(this.names.broadcastSubject, {
        callback: (error, raw) => {
          if (error) return;
          const message = decodeNatsMessage(raw.data);
          if (!message) {
            this.counters.malformedBroadcasts++;
            return;
          }
          this.counters.broadcastsReceived++;
          void Promise.resolve()
            .then(() => handler(message))
            .catch(() => this.counters.broadcastHandlerErrors++);
        },
      });
      // One round trip: once subscribe() resolves the server has the interest, so no broadcast published after it is missed.
      await this.nc!.flush();
      return;
    }
    if (subscription !== 'node') throw new InvalidOptionsError('subscription', `must be 'node' or 'allNodes' (got ${JSON.stringify(subscription)})`);
    await Promise.all([this.inbox?.stop(), this.replies?.stop()]);
    this.inboxHandler = handler;
    this.startReaders(nodeId, handler);
  }

  private startReaders(nodeId: string, handler: ClusterMessageHandler): void {
    const reader = (stream: string, maxInFlight: number) =>
      new StreamReader({
        js: () => this.js!,
        jsm: () => this.jsm!,
        stream,
        handler,
        logger: this.logger,
        batchSize: this.readBatchSize,
        maxInFlight,
        ackWaitMs: this.ackWaitMs,
        redeliveredUpTo: this.readBefore.get(stream) ?? 0,
      });
    // Replies are read apart, without the inbox's cap: answers keep flowing while the inbox waits on charge points.
    this.inbox = reader(this.names.inboxStream(nodeId), this.maxInFlight);
    this.replies = reader(this.names.repliesStream(nodeId), Math.max(this.maxInFlight, 10_000));
    this.inbox.start();
    this.replies.start();
  }

  async unsubscribe(subscription: ClusterSubscription): Promise<void> {
    if (subscription === 'allNodes') {
      this.broadcastSub?.unsubscribe();
      this.broadcastSub = null;
      return;
    }
    const readers = [this.inbox, this.replies];
    this.inbox = null;
    this.replies = null;
    await Promise.all(readers.map((reader) => reader?.stop()));
  }

  /** Publishes to one lane of a node (its inbox or its replies stream), acknowledged by JetStream. */
  private async sendTo(to: NodeAddress, message: ClusterMessage): Promise<void> {
    const js = this.js;
    if (!js || this.state === 'closed') throw new ClusterUnavailableError(`adapter is ${this.state}`);
    const subject = to.lane === 'replies' ? this.names.repliesSubject(to.node) : this.names.inboxSubject(to.node);
    try {
      await js.publish(subject, encodeNatsMessage(message), { timeout: this.requestTimeoutMs });
      this.counters.sent++;
    } catch (error) {
      if (jsErrorCode(error) === JS_MAXIMUM_MESSAGES_EXCEEDED) {
        if (message.kind === 'command') this.counters.commandsRefused++;
        throw new InboxFullError(to.node, this.inboxMaxMessages, this.inboxMaxMessages);
      }
      this.counters.sendFailures++;
      if (isNoStream(error) && (await this.laneIsMissing(to))) throw new NodeLaneMissingError(to.node, to.lane, 'NATS');
      throw this.unavailable(error);
    }
  }

  /**
   * "No responders" is also what a publish gets while a replicated stream elects a new leader
   * (a server was killed): only the stream's own absence, asked of JetStream, proves the lane
   * gone. Anything else (it exists, no answer) is a passing outage.
   */
  private async laneIsMissing(to: NodeAddress): Promise<boolean> {
    const stream = to.lane === 'replies' ? this.names.repliesStream(to.node) : this.names.inboxStream(to.node);
    try {
      await this.jsm?.streams.info(stream);
      return false;
    } catch (error) {
      return isStreamNotFound(error);
    }
  }

  // ---------------------------------------------------------------- node loss (the policy is the cluster layer's)

  get lossCheckIntervalMs(): number {
    return this.takeoverIntervalMs;
  }

  async lostNodes(): Promise<string[]> {
    if (this.state !== 'connected' || !this.nodeLoss) return [];
    return this.nodeLoss.lostNodes();
  }

  async claimLostNode(nodeId: string): Promise<LostNodeClaim | null> {
    if (this.state !== 'connected' || !this.nodeLoss || nodeIdProblem(nodeId)) return null;
    return this.nodeLoss.claimLostNode(nodeId);
  }

  async liveNodes(): Promise<string[]> {
    this.requireConnected();
    try {
      return await this.nodeLoss!.liveNodes();
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  // ---------------------------------------------------------------- presence

  async setPresence(identity: string, protocol: OcppProtocol, connectedAt: number): Promise<PresenceClaim> {
    const nodeId = this.requireConnected();
    try {
      const { record, previous } = await this.presence.claim(identity, nodeId, protocol, connectedAt);
      const live = previous && (previous.nodeId === nodeId || (await this.liveness!.isAlive(previous.nodeId))) ? previous : null;
      return { record, previous: live };
    } catch (error) {
      this.retryRegistration([identity]);
      throw this.unavailable(error);
    }
  }

  async getPresence(identity: string): Promise<PresenceRecord | null> {
    this.requireConnected();
    let record: PresenceRecord | null;
    let ownerState: OwnerState | null = null;
    try {
      record = await this.presence.get(identity);
      if (record) ownerState = await this.ownerState(record.nodeId);
    } catch (error) {
      throw this.unavailable(error);
    }
    if (record && ownerState === 'alive') return record;
    if (record && ownerState === 'lapsed') {
      throw new ClusterUnavailableError(
        `cannot tell whether ${identity} is connected: its node ${record.nodeId} went silent and was not taken over`,
      );
    }
    this.requireTrustedPresence(identity);
    return null;
  }

  private requireTrustedPresence(identity: string): void {
    const doubt = this.presenceDoubt();
    if (doubt) throw new ClusterUnavailableError(`cannot tell whether ${identity} is connected: ${doubt}`);
  }

  presenceDoubt(): string | null {
    if (this.disconnected) return 'NATS is unreachable';
    return this.liveness?.presenceDoubt() ?? null;
  }

  holdsLease(): boolean {
    return this.state === 'connected' && this.rejoining === null && (this.liveness?.hasLease() ?? false);
  }

  /**
   * Like getPresence, except that an owner that went silent without being taken over keeps its
   * entry (a batch has no per-identity "unavailable"): its command waits in that node's inbox,
   * served once the node beats again, or answered by the survivor that takes it over.
   */
  async getPresenceBatch(identities: readonly string[]): Promise<Map<string, PresenceRecord>> {
    this.requireConnected();
    try {
      const records = await this.presence.getBatch(identities);
      const nodeIds = [...new Set([...records.values()].map((record) => record.nodeId))];
      const states = new Map(await Promise.all(nodeIds.map(async (nodeId) => [nodeId, await this.ownerState(nodeId)] as const)));
      for (const [identity, record] of records) if (states.get(record.nodeId) === 'gone') records.delete(identity);
      return records;
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  async removePresence(identity: string, epoch: number): Promise<boolean> {
    const nodeId = this.requireConnected();
    try {
      return await this.presence.remove(identity, nodeId, epoch);
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  /**
   * A claim whose handshake never opened: the owner it displaced gets the identity back (see
   * PresenceBucket.release) while that owner may still hold its socket: our own older socket only
   * while it is open here, another node's only while that node is alive (a dead one's entry would
   * come back listed once it restarts under its id).
   */
  async releaseClaim(claim: PresenceClaim): Promise<boolean> {
    const nodeId = this.requireConnected();
    const { identity, epoch } = claim.record;
    try {
      const previous = claim.previous;
      const stillHeld = previous === null ? false : previous.nodeId === nodeId ? this.holdsLocally(previous) : await this.liveness!.isAlive(previous.nodeId);
      return await this.presence.release(identity, nodeId, epoch, stillHeld ? previous : null);
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  private holdsLocally(record: PresenceRecord): boolean {
    return this.localRecords().some((local) => local.identity === record.identity && local.epoch === record.epoch);
  }

  async listPresence(): Promise<PresenceRecord[]> {
    this.requireConnected();
    try {
      const records = await this.presence.list();
      const alive = await this.aliveSet(new Set(records.map((record) => record.nodeId)));
      return records.filter((record) => alive.has(record.nodeId));
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  async isNodeAlive(nodeId: string): Promise<boolean> {
    if (nodeIdProblem(nodeId)) return false;
    this.requireConnected();
    try {
      return await this.liveness!.isAlive(nodeId);
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  /**
   * Alive, gone (proven: taken over or left), or lapsed (silent, not taken over: frozen or cut
   * off; it beats again when it can). Only "gone" lets a caller answer a definitive NotConnected.
   */
  private async ownerState(nodeId: string): Promise<OwnerState> {
    if (await this.liveness!.isAlive(nodeId)) return 'alive';
    return (await this.liveness!.isProvenGone(nodeId)) ? 'gone' : 'lapsed';
  }

  private async aliveSet(nodeIds: Set<string>): Promise<Set<string>> {
    const checks = await Promise.all([...nodeIds].map(async (nodeId) => [nodeId, await this.liveness!.isAlive(nodeId)] as const));
    return new Set(checks.filter(([, alive]) => alive).map(([nodeId]) => nodeId));
  }

  /** This node's sockets as presence records (the node's epochs; 0 for those never registered). */
  private localRecords(): PresenceRecord[] {
    const nodeId = this.nodeId!;
    return (this.source?.localPresence() ?? []).map((record) => ({ ...record, nodeId }));
  }

  /** Registers these identities' sockets again soon (a claim failed while NATS refused writes). */
  private retryRegistration(identities: readonly string[]): void {
    for (const identity of identities) this.unregistered.add(identity);
    if (this.registrationRetry || this.unregistered.size === 0 || this.state !== 'connected') return;
    this.registrationRetry = setTimeout(() => {
      this.registrationRetry = null;
      const pending = new Set(this.unregistered);
      this.unregistered.clear();
      void this.rehydrate(this.localRecords().filter((record) => pending.has(record.identity))).catch(() => this.retryRegistration([...pending]));
    }, 500);
    this.registrationRetry.unref();
  }

  /** Re-registers local sockets without overwriting newer owners, and tells the node what it found (PresenceRestore). */
  private async rehydrate(records: PresenceRecord[] = this.localRecords()): Promise<void> {
    const nodeId = this.nodeId!;
    const tell = (restore: PresenceRestore): boolean | void => this.source?.onPresenceRestored?.(restore);
    const writtenBack: PresenceRecord[] = [];
    for (const local of records) {
      const { record, status, existing } = await this.presence.rehydrate(local);
      if (status === 'refused') {
        this.counters.rehydrateRefused++;
        if (existing && existing.nodeId !== nodeId) {
          tell({ kind: 'superseded', identity: local.identity, epoch: local.epoch, newOwner: existing.nodeId });
          this.counters.evictsSent++;
        }
        continue;
      }
      if (status === 'kept') continue;
      if (local.epoch !== 0) writtenBack.push(local);
      this.counters.rehydrated++;
      if (local.epoch === 0 && tell({ kind: 'registered', identity: local.identity, epoch: record.epoch }) === false) {
        // The socket closed (or got its own epoch) meanwhile: what we wrote for it must go.
        await this.presence.remove(local.identity, nodeId, record.epoch).catch(() => undefined);
        continue;
      }
      if (existing && existing.nodeId !== nodeId && (await this.liveness!.isAlive(existing.nodeId))) {
        tell({ kind: 'displaced', identity: local.identity, previous: existing });
        this.counters.evictsSent++;
      }
    }
    // A socket that closed before its entry was written back removed nothing (the entry was
    // missing then): what we wrote for it must go, or it stays listed until the entry expires.
    const open = new Set(this.localRecords().map((record) => `${record.identity}\u0000${record.epoch}`));
    for (const local of writtenBack) {
      if (!open.has(`${local.identity}\u0000${local.epoch}`)) await this.presence.remove(local.identity, nodeId, local.epoch).catch(() => undefined);
    }
  }

  // ---------------------------------------------------------------- recovery

  private watchStatus(nc: NatsConnection): void {
    void (async () => {
      for await (const status of nc.status()) {
        if (this.state === 'closed') return;
        if (status.type === 'disconnect') {
          this.disconnected = true;
          this.counters.disconnects++;
        } else if (status.type === 'reconnect') {
          this.disconnected = false;
          this.counters.reconnects++;
          // NATS may have restarted, with or without its store: every node re-registers.
          this.liveness?.noteDisturbance();
          this.scheduleRecover('NATS connection re-established');
        }
      }
    })().catch(() => undefined);
  }

  private scheduleRecover(reason: string): void {
    if (this.state !== 'connected') return;
    if (this.recovering) {
      this.recoverAgain = true;
      return;
    }
    this.logger.log(`recovering cluster state: ${reason}`);
    this.recovering = this.recover().finally(() => {
      this.recovering = null;
      if (this.recoverAgain) {
        this.recoverAgain = false;
        this.scheduleRecover('requested again during recovery');
      }
    });
  }

  /** After a reconnect or a lost store: buckets, streams, consumers and presence are made whole again. */
  private async recover(): Promise<void> {
    let backoffMs = 100;
    while (this.state === 'connected' && this.rejoining === null) {
      try {
        await beforeDeadline(
          (async () => {
            await this.ensureBuckets();
            await this.liveness!.beat();
            if (!this.liveness!.isHeld) return;
            // A beat that failed (not answered in time) proves nothing: past our lease a survivor may
            // have fenced us and retired our consumer, and making it anew would reopen a fenced inbox.
            if (!this.liveness!.hasLease()) throw new Error('lease not proven by a heartbeat yet');
            await this.ensureReadersHaveStreams(this.nodeId!);
            this.liveness!.noteDisturbance();
            await this.rehydrate();
          })(),
          Date.now() + Math.max(this.nodeTtlMs, this.requestTimeoutMs * 2),
          () => new Error('recovery step not answered in time'),
        );
        this.counters.recoveries++;
        return;
      } catch (error) {
        this.logger.debug?.(`recovery attempt failed: ${(error as Error).message}`);
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 2000);
      }
    }
  }

  /** Recreates streams and consumers that NATS lost (a restart without its store); existing ones are left alone. */
  private async ensureReadersHaveStreams(nodeId: string): Promise<void> {
    const jsm = this.jsm!;
    let lost = false;
    for (const stream of [this.names.inboxStream(nodeId), this.names.repliesStream(nodeId)]) {
      try {
        await jsm.consumers.info(stream, READER);
      } catch (error) {
        if (!isConsumerNotFound(error) && !isStreamNotFound(error)) throw error;
        lost = true;
      }
    }
    if (lost) await this.ensureStreams(nodeId, 0);
  }

  private onLeaseEvent(event: NatsLeaseEvent): void {
    if (this.state !== 'connected') return;
    switch (event) {
      case 'suspended':
        this.source?.onLeaseChange?.('suspended');
        return;
      case 'resumed':
        this.source?.onLeaseChange?.('resumed');
        this.scheduleRecover('lease taken back');
        return;
      case 'restored':
        this.liveness?.noteDisturbance();
        this.scheduleRecover('NATS lost this node\'s state');
        return;
      case 'takenOver':
        this.rejoining ??= this.rejoin().finally(() => {
          this.rejoining = null;
        });
        return;
      case 'conflict':
        this.onConflict();
        return;
    }
  }

  /**
   * A survivor took this node over while its lease had lapsed (it was frozen or cut off): what it
   * read before was answered there. Stop reading at once (nothing more is acknowledged), let the
   * node drop what it held, then come back under a fresh token with fresh consumers.
   */
  private async rejoin(): Promise<void> {
    const nodeId = this.nodeId!;
    this.logger.error(`node ${nodeId} was taken over while its lease had lapsed; dropping what it read and rejoining`);
    this.inbox?.abort();
    this.replies?.abort();
    this.inbox = null;
    this.replies = null;
    this.source?.onLeaseChange?.('fenced');
    const waitsBefore = this.counters.fenceWaits;
    let backoffMs = 100;
    while (this.state === 'connected') {
      try {
        const fence = await this.liveness!.renew();
        if (fence.fencedBy !== undefined) {
          // Its streams are the survivor's until it is done (it deletes them last): none made anew before.
          if (this.counters.fenceWaits++ === waitsBefore) this.logger.warn(`node ${nodeId} waits for ${fence.fencedBy} to finish taking it over before it rejoins`);
          await sleep(backoffMs);
          backoffMs = Math.min(backoffMs * 2, 2000);
          continue;
        }
        if (!fence.ok) {
          this.onConflict();
          return;
        }
        await this.ensureStreams(nodeId, fence.deliveredSeq ?? 0);
        this.liveness!.start();
        if (this.inboxHandler) this.startReaders(nodeId, this.inboxHandler);
        this.counters.rejoins++;
        this.logger.log(`node ${nodeId} rejoined the cluster under a fresh lease`);
        this.source?.onLeaseChange?.('rejoined');
        await this.rehydrate().catch(() => undefined);
        return;
      } catch (error) {
        this.logger.debug?.(`rejoining failed: ${(error as Error).message}`);
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 2000);
      }
    }
  }

  private onConflict(): void {
    if (this.state !== 'connected') return;
    this.state = 'conflict';
    this.logger.error(`node id ${this.nodeId} is now held by another process; this node stops reading its inbox, closes its sockets and is not live`);
    this.stopTimers();
    this.inbox?.abort();
    this.replies?.abort();
    this.source?.onLeaseChange?.('lost');
  }

  private stopTimers(): void {
    if (this.registrationRetry) clearTimeout(this.registrationRetry);
    this.registrationRetry = null;
    this.liveness?.stop();
  }

  // ---------------------------------------------------------------- health and metrics

  isHealthy(): boolean {
    return this.healthIssue() === null;
  }

  healthIssue(): string | null {
    if (this.state !== 'connected') return `adapter is ${this.state}`;
    if (!this.nc || this.nc.isClosed()) return 'NATS connection closed';
    if (this.disconnected) return 'NATS unreachable (reconnecting)';
    if (!this.liveness?.isHeld) return 'liveness record not held';
    if (this.inbox && !this.inbox.isRunning) return 'inbox reader not running';
    return null;
  }

  /** Readiness: a round trip to the server and a JetStream read within `timeoutMs`; liveness and readers. */
  async probe(timeoutMs: number): Promise<TransportProbe> {
    const connections: TransportProbe['connections'] = {};
    const nc = this.nc;
    if (!nc || nc.isClosed() || this.disconnected) {
      connections.nats = { ok: false, rttMs: null, error: nc?.isClosed() ? 'connection closed' : 'not connected' };
    } else {
      connections.nats = await timedCheck(nc.rtt(), timeoutMs);
    }
    let numbers = this.lastNumbers;
    if (connections.nats.ok && this.inbox) {
      connections.jetstream = await timedCheck(this.readNumbers(), timeoutMs);
      numbers = this.lastNumbers;
    }
    return {
      connections,
      livenessHeld: this.state === 'connected' && (this.liveness?.hasLease() ?? false),
      consumerRunning: this.inbox?.isRunning ?? false,
      consumerLag: numbers.pending,
      pendingMessages: numbers.ackPending,
    };
  }

  /** Real JetStream numbers of this node's two consumers (inbox and replies), summed. */
  private async readNumbers(): Promise<void> {
    const readers = [this.inbox, this.replies].filter((reader): reader is StreamReader => reader !== null);
    const all = await Promise.all(readers.map((reader) => reader.consumerNumbers()));
    this.lastNumbers = all.reduce(
      (sum, each) => ({ ackPending: sum.ackPending + each.ackPending, pending: sum.pending + each.pending, redelivered: sum.redelivered + each.redelivered, length: sum.length + each.length }),
      { ackPending: 0, pending: 0, redelivered: 0, length: 0 },
    );
  }

  async metrics(): Promise<AdapterMetrics> {
    if (this.nc && !this.nc.isClosed() && !this.disconnected) {
      await settleWithin(this.readNumbers().catch(() => undefined), this.requestTimeoutMs);
    }
    const readers = [this.inbox, this.replies].filter((reader): reader is StreamReader => reader !== null);
    const sum = (pick: (reader: StreamReader) => number): number => readers.reduce((total, reader) => total + pick(reader), 0);
    return {
      pendingMessages: this.lastNumbers.ackPending,
      consumerLag: this.lastNumbers.pending,
      activeSubscriptions: (this.broadcastSub ? 1 : 0) + readers.filter((reader) => reader.isRunning).length,
      redeliveries: this.lastNumbers.redelivered,
      streamLength: this.lastNumbers.length,
      sent: this.counters.sent,
      sendFailures: this.counters.sendFailures,
      commandsRefused: this.counters.commandsRefused,
      received: sum((reader) => reader.received),
      acked: sum((reader) => reader.acked),
      inFlightHandlers: sum((reader) => reader.inFlightCount),
      malformedMessages: sum((reader) => reader.malformed) + this.counters.malformedBroadcasts,
      handlerErrors: sum((reader) => reader.handlerErrors) + this.counters.broadcastHandlerErrors,
      pullFailures: sum((reader) => reader.pullFailures),
      broadcastsSent: this.counters.broadcastsSent,
      broadcastsReceived: this.counters.broadcastsReceived,
      disconnects: this.counters.disconnects,
      reconnects: this.counters.reconnects,
      recoveries: this.counters.recoveries,
      presenceRehydrated: this.counters.rehydrated,
      presenceRehydrateRefused: this.counters.rehydrateRefused,
      evictsSent: this.counters.evictsSent,
      heartbeatFailures: this.liveness?.failures ?? 0,
      leaseSuspensions: this.liveness?.suspensions ?? 0,
      leaseTakenOver: this.liveness?.takenOver ?? 0,
      leaseKeptThroughStalls: this.liveness?.keptThroughStalls ?? 0,
      rejoins: this.counters.rejoins,
      rejoinFenceWaits: this.counters.fenceWaits,
      healthy: this.isHealthy() ? 1 : 0,
    };
  }

  // ---------------------------------------------------------------- helpers

  private requireConnected(): string {
    if (this.state !== 'connected' || this.nodeId === null) {
      throw new ClusterUnavailableError(this.state === 'conflict' ? 'node id taken over by another process' : `adapter is ${this.state}`);
    }
    return this.nodeId;
  }

  private requireConnection(): NatsConnection {
    this.requireConnected();
    if (!this.nc || this.nc.isClosed()) throw new ClusterUnavailableError('NATS connection closed');
    if (this.disconnected) throw new ClusterUnavailableError(`${this.location()} unreachable: not connected`);
    return this.nc;
  }

  private requireKv(kv: KV | null): KV {
    if (!kv) throw new ClusterUnavailableError(`adapter is ${this.state}`);
    return kv;
  }

  private location(): string {
    const servers = this.connectOptions.servers;
    const list = servers === undefined ? [this.nc?.getServer() ?? 'its server'] : Array.isArray(servers) ? servers : [servers];
    return `NATS at ${list.join(',')}`;
  }

  private unavailable(error: unknown): Error {
    return natsUnavailable(error, this.location());
  }

  private async closeOwnConnection(): Promise<void> {
    const nc = this.nc;
    if (!nc || nc.isClosed()) return;
    await settleWithin(nc.close().catch(() => undefined), STEP_TIMEOUT_MS);
  }
}

/** A node address with a node id NATS can name. */
function checkedAddress(to: NodeAddress): NodeAddress {
  const problem = nodeIdProblem(to?.node);
  if (problem) throw new InvalidOptionsError('to', `bad node id ${JSON.stringify(to?.node)}: ${problem}`);
  if (to.lane !== 'inbox' && to.lane !== 'replies') throw new InvalidOptionsError('to', `lane must be inbox or replies (got ${JSON.stringify(to.lane)})`);
  return to;
}

function integerOption(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionsError(name, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** One readiness check: ok with its round-trip time, or why not, within `timeoutMs`. */
async function timedCheck(check: Promise<unknown>, timeoutMs: number): Promise<TransportProbe['connections'][string]> {
  const started = performance.now();
  const outcome = await settleWithin(
    check.then(
      () => null,
      (error: Error) => error.message,
    ),
    timeoutMs,
  );
  if (outcome === null) return { ok: true, rttMs: Math.round(performance.now() - started) };
  return { ok: false, rttMs: null, error: outcome ?? `no answer within ${timeoutMs} ms` };
}

async function bounded(step: Promise<unknown> | undefined): Promise<void> {
  if (step) await settleWithin(step.catch(() => undefined), STEP_TIMEOUT_MS);
}
