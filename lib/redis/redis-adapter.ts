import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { BROADCAST_CHANNEL, nodeIdOfChannel, type ClusterMessage } from '../cluster/envelope.js';
import type {
  AdapterMetrics,
  ClusterMessageHandler,
  DeliveryInfo,
  EventAdapterInterface,
  PresenceClaim,
  PresenceRecord,
  PresenceSnapshotSource,
  TransportProbe,
} from '../cluster/event-adapter.interface.js';
import { groupBy } from '../cluster/group-by.js';
import type { ClusterLogger } from '../cluster/logger.js';
import { ClusterUnavailableError, InboxFullError, InvalidOptionsError } from '../protocol/errors.js';
import { redisLocation, redisUnavailable } from './redis-outage.js';
import type { OcppProtocol } from '../protocol/protocol.js';
import { Broadcaster } from './broadcaster.js';
import { ClusterDriver, type ClusterDriverOptions } from './cluster-driver.js';
import { pingWithin, writeWithin } from './connection-probe.js';
import { NODE_CLEANUP } from './lua-scripts.js';
import { isProvenGone, NodeLiveness, type LeaseEvent } from './node-liveness.js';
import { beforeDeadline, settleWithin, sleep } from '../cluster/time-bounds.js';
import { NodeTakeover } from './node-takeover.js';
import { PresenceStore, type RehydrateResult } from './presence-store.js';
import { RedisConnectionPool, validatePoolOptions, type DriverFactory } from './redis-connection-pool.js';
import { createDriver, DEFAULT_REDIS_LOGGER, RedisDriver, type RedisClient } from './redis-driver.js';
import { DEFAULT_PREFIX, INBOX_GROUP, keyPartProblem, RedisKeys } from './redis-keys.js';
import { StreamConsumer } from './stream-consumer.js';
import { StreamAppender } from './stream-appender.js';
import { destinationStream } from './stream-publisher.js';

/** The plain-option form of a {@link ClusterDriver} (`redis: { cluster: { nodes, natMap } }`). */
export type RedisClusterOptions = Omit<ClusterDriverOptions, 'logger' | 'redisOptions'> & {
  /** Node connection options for this cluster only (merged over the adapter's `redisOptions`). */
  redisOptions?: RedisOptions;
};

/** The transport's counters, plus the seed's `redisConsumerLag` (see {@link RedisAdapter.metrics}). */
export type RedisAdapterMetrics = AdapterMetrics & { readonly redisConsumerLag: { pendingMessages: number; lag: number } };

export interface RedisAdapterOptions {
  /** `redis://` URL to build our own connections from (closed by us). One of `url`, `cluster`, `pubClient`, `driver`. */
  url?: string;
  /**
   * A Redis Cluster to build our own connections from (closed by us): `{ nodes, natMap?,
   * clusterOptions?, shardedPubSub? }`, the options of {@link ClusterDriver}.
   */
  cluster?: RedisClusterOptions;
  /** A ready-made driver (e.g. a `ClusterDriver`) as pool member 0; closed with the adapter. */
  driver?: RedisDriver;
  /** Extra ioredis options for connections built from `url` or `cluster` (TLS, password, connectionName...). */
  redisOptions?: RedisOptions;
  /** User-built writer connection: used as given, never closed by us. */
  pubClient?: RedisClient;
  /** User-built subscriber connection; duplicated from `pubClient` when absent. */
  subClient?: RedisClient;
  /** User-built connection for blocking stream reads (`maxRetriesPerRequest: null`); duplicated when absent. */
  blockingClient?: RedisClient;
  /** Key prefix (default `ocpp-cluster:`); must not contain `{` or `}`. */
  prefix?: string;
  /**
   * Cap on this node's inbox: commands not yet handled (unread plus read and unacknowledged).
   * A command for a node whose inbox is at its cap is refused with `InboxFullError` (`sent: false`)
   * instead of appended; nothing is ever trimmed unread (default 10000).
   */
  streamMaxLen?: number;
  /** TTL of an inbox stream nobody writes to or keeps alive (default 300). */
  streamTtlSeconds?: number;
  /** TTL of a presence entry; refreshed every third of it while the socket lives (default 300). */
  presenceTtlSeconds?: number;
  /** Writer connections; messages to one node always use the same one (default 1). */
  poolSize?: number;
  /** Makes pool members 1..poolSize-1 (required when `poolSize > 1`), e.g. `() => createDriver({ url })`. */
  driverFactory?: DriverFactory;
  /** TTL of the node liveness key, refreshed every third of it (default 5000). */
  nodeTtlMs?: number;
  /** How often survivors look for lapsed nodes to take over (default 1000). */
  takeoverIntervalMs?: number;
  /** Inbox entries read at once (default 100). */
  readBatchSize?: number;
  /** Inbox handlers running at once before reading pauses (default 1000). */
  maxInFlight?: number;
  logger?: ClusterLogger;
}

type State = 'idle' | 'connecting' | 'connected' | 'conflict' | 'closing' | 'closed';
/** What a presence entry's node is, as far as a caller may judge (see ownerStates). */
type OwnerState = 'alive' | 'lapsed' | 'gone';

/** Bound on each Redis step of disconnect(), so leaving never hangs on a dead server. */
const STEP_TIMEOUT_MS = 2000;
/** Backoff of the retry of failed presence claims (see retryRegistration). */
const REGISTRATION_RETRY_MIN_MS = 100;
const REGISTRATION_RETRY_MAX_MS = 2000;

/**
 * The Redis cluster transport: node inboxes on Redis Streams with consumer groups (unicast,
 * acknowledged; answers to a node's own calls on a replies stream of its own), pub/sub for broadcasts, presence with epoch fencing in Lua, node liveness with
 * a short TTL, and takeover of dead nodes' inboxes. Keys carry hash tags (Redis Cluster safe).
 *
 * After a Redis reconnect (or when the liveness key lapsed) it re-acquires liveness, recreates
 * its consumer group if the stream vanished, and re-registers `source.localPresence()` without
 * overwriting newer owners; sockets that lost to a newer owner get an `evict` in their own inbox.
 */
export class RedisAdapter implements EventAdapterInterface {
  readonly name = 'redis';
  readonly keys: RedisKeys;
  private readonly driver: RedisDriver;
  private readonly pool: RedisConnectionPool;
  private readonly presence: PresenceStore;
  private readonly broadcaster: Broadcaster;
  private readonly logger: ClusterLogger;
  private readonly streamMaxLen: number;
  private readonly streamTtlMs: number;
  private readonly presenceTtlMs: number;
  private readonly nodeTtlMs: number;
  private readonly takeoverIntervalMs: number;
  private readonly readBatchSize: number;
  private readonly maxInFlight: number;
  private readonly appender: StreamAppender;

  private state: State = 'idle';
  private nodeId: string | null = null;
  private source: PresenceSnapshotSource | null = null;
  private liveness: NodeLiveness | null = null;
  private takeover: NodeTakeover | null = null;
  private consumer: StreamConsumer | null = null;
  private presenceTimer: NodeJS.Timeout | null = null;
  /** The second look at our presence entries a TTL after a failover or a reconnect (see recheckPresenceLater). */
  private presenceRecheck: NodeJS.Timeout | null = null;
  private removeReconnectListener: () => void = () => undefined;
  private recovering: Promise<void> | null = null;
  private inboxHandler: ClusterMessageHandler | null = null;
  private rejoining: Promise<void> | null = null;
  private recoverAgain = false;
  /** Epochs given to local sockets that connected while Redis was unreachable (their own epoch is 0). */
  private readonly adopted = new Map<string, number>();
  /** Identities whose claim or re-registration failed: retried with a short backoff, not only at the next refresh. */
  private readonly unregistered = new Set<string>();
  private registrationRetry: NodeJS.Timeout | null = null;
  private registrationBackoffMs = REGISTRATION_RETRY_MIN_MS;
  private lastMetrics = { pending: 0, lag: 0, length: 0 };
  private readonly counters = {
    sent: 0,
    sendFailures: 0,
    recoveries: 0,
    rehydrated: 0,
    rehydrateRefused: 0,
    evictsSent: 0,
    presenceRefreshFailures: 0,
    rejoins: 0,
    /** Commands this node wanted to append and the owner's full inbox refused. */
    commandsRefused: 0,
  };

  constructor(options: RedisAdapterOptions) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('redis', 'must be an object');
    this.keys = new RedisKeys(options.prefix ?? DEFAULT_PREFIX);
    // A cap on commands waiting, not on history (the reader trims what it acknowledged).
    this.streamMaxLen = integerOption('streamMaxLen', options.streamMaxLen, 10_000, 10, 10_000_000);
    this.streamTtlMs = integerOption('streamTtlSeconds', options.streamTtlSeconds, 300, 1, 30 * 86_400) * 1000;
    this.presenceTtlMs = integerOption('presenceTtlSeconds', options.presenceTtlSeconds, 300, 1, 30 * 86_400) * 1000;
    this.nodeTtlMs = integerOption('nodeTtlMs', options.nodeTtlMs, 5000, 300, 600_000);
    this.takeoverIntervalMs = integerOption('takeoverIntervalMs', options.takeoverIntervalMs, 1000, 50, 60_000);
    this.readBatchSize = integerOption('readBatchSize', options.readBatchSize, 100, 1, 10_000);
    this.maxInFlight = integerOption('maxInFlight', options.maxInFlight, 1000, 1, 1_000_000);
    this.appender = new StreamAppender(this.keys, { fallbackCap: this.streamMaxLen, ttlMs: this.streamTtlMs });
    if (options.logger !== undefined && (typeof options.logger !== 'object' || typeof options.logger.warn !== 'function')) {
      throw new InvalidOptionsError('logger', 'must have log, warn and error methods');
    }
    validatePoolOptions(options);
    this.logger = options.logger ?? DEFAULT_REDIS_LOGGER;
    this.driver = primaryDriver(options, this.logger);
    try {
      this.pool = new RedisConnectionPool(this.driver, options);
    } catch (error) {
      this.driver.destroy();
      throw error;
    }
    const mixed = this.pool.drivers.find((driver) => driver.isCluster !== this.driver.isCluster);
    if (mixed) {
      this.pool.destroy();
      this.driver.destroy();
      throw new InvalidOptionsError(
        'driverFactory',
        `made a ${mixed.isCluster ? 'Redis Cluster' : 'standalone Redis'} driver for a pool on ${this.driver.isCluster ? 'Redis Cluster' : 'standalone Redis'}`,
      );
    }
    this.presence = new PresenceStore({ keys: this.keys, pool: this.pool, presenceTtlMs: this.presenceTtlMs });
    this.broadcaster = new Broadcaster({
      subscriber: () => this.driver.subscriber,
      mode: () => this.driver.pubSubMode,
      logger: this.logger,
    });
  }

  /** The writer pool (member 0 is the driver built from `url` or `cluster`, the user's clients, or the user's driver). */
  get connectionPool(): RedisConnectionPool {
    return this.pool;
  }

  /** identity → owner, with fencing. */
  get presenceStore(): PresenceStore {
    return this.presence;
  }

  /** Cluster-wide pub/sub fan-out. */
  get broadcasts(): Broadcaster {
    return this.broadcaster;
  }

  /** This node's inbox reader (null until `subscribe(nodeChannel(nodeId))`). */
  get streamConsumer(): StreamConsumer | null {
    return this.consumer;
  }

  // ---------------------------------------------------------------- membership

  async connect(nodeId: string, source: PresenceSnapshotSource): Promise<void> {
    if (this.state !== 'idle') throw new ClusterUnavailableError(`adapter is ${this.state}, connect() works once`);
    const problem = keyPartProblem(nodeId);
    if (problem) throw new InvalidOptionsError('nodeId', problem);
    if (!source || typeof source.localPresence !== 'function') {
      throw new InvalidOptionsError('source', 'must have a localPresence() method');
    }
    this.state = 'connecting';
    this.nodeId = nodeId;
    this.source = source;
    const liveness = new NodeLiveness({
      keys: this.keys,
      pool: this.pool,
      nodeId,
      ttlMs: this.nodeTtlMs,
      streamTtlMs: this.streamTtlMs,
      ownedTtlMs: this.presenceTtlMs,
      inboxCap: this.streamMaxLen,
      logger: this.logger,
      onLeaseEvent: (event) => this.onLeaseEvent(event),
    });
    this.liveness = liveness;
    try {
      // Cluster writers fail fast while the cluster is unreachable, so wait for their first connect.
      await Promise.all(this.pool.drivers.map((driver) => driver.ready(readyTimeoutOf(driver))));
      await liveness.acquire();
    } catch (error) {
      this.state = 'idle';
      this.liveness = null;
      throw this.unavailable(error);
    }
    liveness.start();
    this.takeover = new NodeTakeover({
      keys: this.keys,
      pool: this.pool,
      selfId: nodeId,
      liveness,
      presence: this.presence,
      send: (target, message) => this.sendToNode(target, [message]),
      logger: this.logger,
      intervalMs: this.takeoverIntervalMs,
      batchSize: this.readBatchSize,
    });
    this.takeover.start();
    const removeReconnect = this.driver.onReconnect((role) => {
      if (role !== 'writer') return;
      // From the first command on the new connection: Redis may have restarted empty, and the
      // other nodes' sockets are not re-registered yet.
      this.liveness?.noteDisturbance();
      this.scheduleRecover('redis connection re-established');
      this.recheckPresenceLater();
    });
    // A failover can lose the last writes its old master had not replicated: re-check liveness,
    // re-read our pending inbox entries and re-register presence the way a reconnect does.
    const removeTopology = this.driver.onTopologyChange(() => {
      // A failover may have lost the last writes of any node on that shard (presence claims too).
      this.liveness?.noteDisturbance();
      this.scheduleRecover('redis cluster masters changed');
      this.recheckPresenceLater();
    });
    this.removeReconnectListener = () => {
      removeReconnect();
      removeTopology();
    };
    this.schedulePresenceRefresh();
    this.state = 'connected';
  }

  async disconnect(): Promise<void> {
    if (this.state === 'closed' || this.state === 'closing') return;
    const wasMember = this.state === 'connected' || this.state === 'conflict';
    // With the writers down every step of a clean leave (acks, liveness, presence, keys) would only
    // wait out its bound: leave as a crash does; the liveness key lapses and a survivor takes over.
    const writersIssue = this.pool.healthIssue();
    if (writersIssue !== null) {
      if (wasMember) this.logger.warn(`leaving the cluster without clean-up: Redis is unreachable (${writersIssue})`);
      this.abort();
      return;
    }
    this.state = 'closing';
    this.stopTimers();
    this.removeReconnectListener();
    await bounded(this.takeover?.stop());
    await this.consumer?.stop();
    this.consumer = null;
    if (wasMember && this.liveness?.isHeld) await this.leave();
    this.liveness?.abandon();
    this.broadcaster.detach();
    await this.pool.close();
    await this.driver.close();
    this.state = 'closed';
  }

  /**
   * Drops every connection and timer at once, as a crash would: no `nodeLeft`, nothing
   * acknowledged or deleted. The liveness key lapses on its own; then a survivor takes the
   * inbox over, or a restart with the same node id resumes it.
   */
  abort(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.stopTimers();
    this.removeReconnectListener();
    void this.takeover?.stop();
    this.consumer?.abort();
    this.liveness?.abandon();
    this.broadcaster.detach();
    this.pool.destroy();
    this.driver.destroy();
  }

  /** Clean leave: drop liveness, remove what we own, our keys when the inbox is empty, then announce. */
  private async leave(): Promise<void> {
    const nodeId = this.nodeId!;
    await bounded(this.liveness!.release());
    await bounded(
      (async () => {
        await this.presence.removeMany(await this.presence.listOwned(nodeId), nodeId);
        // Entries that arrived after we stopped reading stay for a survivor's takeover to answer.
        const cleaned = await NODE_CLEANUP.run(
          this.pool.pick(this.keys.stream(nodeId)),
          this.keys.nodeKeys(nodeId),
          [INBOX_GROUP],
        );
        if (cleaned === 1) await this.pool.pick(this.keys.registry).zrem(this.keys.registry, nodeId);
      })(),
    );
    // Last, so that a survivor poked by it finds the final state (and drains what was left, if anything).
    await bounded(
      this.broadcaster.publish(this.pool.pick(this.keys.broadcastChannel), this.keys.broadcastChannel, {
        kind: 'nodeLeft',
        nodeId,
      }),
    );
  }

  // ---------------------------------------------------------------- messaging

  async publish(channel: string, message: ClusterMessage): Promise<void> {
    if (channel === BROADCAST_CHANNEL) {
      try {
        await this.broadcaster.publish(this.pool.pick(this.keys.broadcastChannel), this.keys.broadcastChannel, message);
      } catch (error) {
        throw this.unavailable(error);
      }
      return;
    }
    await this.sendToNode(this.targetOf(channel), [message]);
  }

  /** One MULTI per destination node (messages keep their order per node); broadcasts go through PUBLISH. */
  async publishBatch(messages: ReadonlyArray<{ channel: string; message: ClusterMessage }>): Promise<void> {
    const broadcasts = messages.filter(({ channel }) => channel === BROADCAST_CHANNEL);
    const byNode = groupBy(
      messages.filter(({ channel }) => channel !== BROADCAST_CHANNEL),
      ({ channel }) => this.targetOf(channel),
    );
    const sends: Promise<unknown>[] = [...byNode].map(([target, list]) => this.sendToNode(target, list.map(({ message }) => message)));
    for (const { message } of broadcasts) sends.push(this.publish(BROADCAST_CHANNEL, message));
    const results = await Promise.allSettled(sends);
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) throw this.unavailable(failed.reason);
  }

  async subscribe(channel: string, handler: ClusterMessageHandler): Promise<void> {
    if (typeof handler !== 'function') throw new InvalidOptionsError('handler', 'must be a function');
    if (channel === BROADCAST_CHANNEL) {
      try {
        await this.broadcaster.subscribe(this.keys.broadcastChannel, (message) => {
          if (message.kind === 'nodeLeft' && message.nodeId !== this.nodeId) this.takeover?.poke();
          return handler(message);
        });
      } catch (error) {
        throw this.unavailable(error);
      }
      return;
    }
    const nodeId = this.requireConnected();
    if (this.targetOf(channel) !== nodeId) {
      throw new InvalidOptionsError('channel', `a node reads only its own inbox (${channel} is not node:${nodeId})`);
    }
    if (this.consumer) await this.consumer.stop();
    this.inboxHandler = handler;
    try {
      await this.startConsumer(nodeId, handler);
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  private async startConsumer(nodeId: string, handler: ClusterMessageHandler): Promise<void> {
    const consumer = new StreamConsumer({
      streamKey: this.keys.stream(nodeId),
      repliesKey: this.keys.replies(nodeId),
      group: INBOX_GROUP,
      consumer: nodeId,
      reader: () => this.driver.blocking,
      writer: () => this.pool.pick(this.keys.stream(nodeId)),
      handler: (message, _entryId, redelivered) => (redelivered ? handler(message, REDELIVERED) : handler(message)),
      logger: this.logger,
      batchSize: this.readBatchSize,
      maxInFlight: this.maxInFlight,
    });
    this.consumer = consumer;
    try {
      await consumer.start();
    } catch (error) {
      if (this.consumer === consumer) this.consumer = null;
      throw error;
    }
  }

  async unsubscribe(channel: string): Promise<void> {
    if (channel === BROADCAST_CHANNEL) {
      await this.broadcaster.unsubscribe(this.keys.broadcastChannel).catch((error) => {
        throw this.unavailable(error);
      });
      return;
    }
    if (this.nodeId !== null && nodeIdOfChannel(channel) === this.nodeId && this.consumer) {
      const consumer = this.consumer;
      this.consumer = null;
      await consumer.stop();
    }
  }

  /**
   * Appends to `target`'s streams (answers to its replies stream, the rest to its inbox) through
   * the pool member that carries that node (ordering). Rejects with `InboxFullError` when the
   * target's inbox refused the commands (none of them was appended).
   */
  private async sendToNode(target: string, messages: ClusterMessage[]): Promise<void> {
    const client = this.pool.pick(this.keys.stream(target));
    const byStream = groupBy(messages, (message) => destinationStream(this.keys, target, message));
    const appends = [...byStream].map(async ([streamKey, list]) => {
      try {
        await this.appender.append(client, target, streamKey, list);
        this.counters.sent += list.length;
      } catch (error) {
        if (error instanceof InboxFullError) this.counters.commandsRefused += list.filter((m) => m.kind === 'command').length;
        else this.counters.sendFailures += list.length;
        throw error;
      }
    });
    const results = await Promise.allSettled(appends);
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) throw this.unavailable(failed.reason);
  }

  private targetOf(channel: string): string {
    const target = nodeIdOfChannel(channel);
    if (target === null) throw new InvalidOptionsError('channel', `unknown channel ${JSON.stringify(channel)}`);
    const problem = keyPartProblem(target);
    if (problem) throw new InvalidOptionsError('channel', `bad node id in ${JSON.stringify(channel)}: ${problem}`);
    return target;
  }

  // ---------------------------------------------------------------- presence

  async setPresence(identity: string, protocol: OcppProtocol, connectedAt: number): Promise<PresenceClaim> {
    const nodeId = this.requireConnected();
    try {
      const { record, previous } = await this.presence.claim(identity, nodeId, protocol, connectedAt);
      const live = previous && (previous.nodeId === nodeId || (await this.liveness!.isAlive(previous.nodeId))) ? previous : null;
      return { record, previous: live };
    } catch (error) {
      // If the router accepts the socket anyway (epoch 0), it is registered once Redis takes writes.
      this.retryRegistration([identity]);
      throw this.unavailable(error);
    }
  }

  async getPresence(identity: string): Promise<PresenceRecord | null> {
    let record: PresenceRecord | null;
    let ownerState: OwnerState;
    try {
      record = await this.presence.get(identity);
      if (!record) {
        this.requireTrustedPresence(identity);
        return null;
      }
      ownerState = (await this.ownerStates(new Set([record.nodeId]))).get(record.nodeId)!;
    } catch (error) {
      throw this.unavailable(error);
    }
    if (ownerState === 'alive') return record;
    if (ownerState === 'lapsed') {
      throw new ClusterUnavailableError(
        `cannot tell whether ${identity} is connected: its node ${record.nodeId} cannot prove its lease and was not taken over`,
      );
    }
    this.requireTrustedPresence(identity);
    return null;
  }

  /**
   * A lapsed liveness key or a missing entry means "not connected" only while presence can be
   * trusted: a stall of Redis lapses every key at once, and a restart of Redis loses every entry
   * until the nodes re-register; a charge point on a node that is merely catching up must not be
   * reported definitively not connected.
   */
  private requireTrustedPresence(identity: string): void {
    const doubt = this.presenceDoubt();
    if (doubt) throw new ClusterUnavailableError(`cannot tell whether ${identity} is connected: ${doubt}`);
  }

  presenceDoubt(): string | null {
    return this.liveness?.presenceDoubt() ?? null;
  }

  holdsLease(): boolean {
    return this.state === 'connected' && this.rejoining === null && (this.liveness?.hasLease() ?? false);
  }

  /**
   * Like getPresence, except that an owner whose node lapsed without being taken over keeps its
   * entry (a batch has no per-identity "unavailable"): its command waits in that node's inbox,
   * served once the node takes its lease back, or answered by the survivor that takes it over.
   */
  async getPresenceBatch(identities: readonly string[]): Promise<Map<string, PresenceRecord>> {
    try {
      const records = await this.presence.getBatch(identities);
      const states = await this.ownerStates(new Set([...records.values()].map((record) => record.nodeId)));
      for (const [identity, record] of records) if (states.get(record.nodeId) === 'gone') records.delete(identity);
      return records;
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  async removePresence(identity: string, epoch: number): Promise<boolean> {
    const nodeId = this.requireConnected();
    const effective = epoch === 0 ? (this.adopted.get(identity) ?? 0) : epoch;
    try {
      const removed = await this.presence.remove(identity, nodeId, effective);
      if (removed || epoch === 0) this.adopted.delete(identity);
      return removed;
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  async listPresence(): Promise<PresenceRecord[]> {
    try {
      const members = await this.pool.pick(this.keys.registry).zrange(this.keys.registry, '0', '-1');
      const alive = await this.aliveSet(new Set(members));
      const lists = await Promise.all([...alive].map((nodeId) => this.presence.listOwned(nodeId)));
      return lists.flat();
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  async isNodeAlive(nodeId: string): Promise<boolean> {
    if (keyPartProblem(nodeId)) return false;
    try {
      return await this.isAlive(nodeId);
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  private isAlive(nodeId: string): Promise<boolean> {
    if (this.liveness) return this.liveness.isAlive(nodeId);
    const key = this.keys.alive(nodeId);
    return this.pool.pick(key).exists(key).then((count) => count === 1);
  }

  /**
   * Per node: alive (it holds its liveness key), gone (proven: taken over or left), or lapsed
   * (its key is missing but nobody took it over: frozen, stalled, cut off by a failover; it takes
   * the key back when it can). Only "gone" lets a caller answer a definitive NotConnected.
   */
  private async ownerStates(nodeIds: Set<string>): Promise<Map<string, OwnerState>> {
    const states = await Promise.all(
      [...nodeIds].map(async (nodeId): Promise<[string, OwnerState]> => {
        if (await this.isAlive(nodeId)) return [nodeId, 'alive'];
        return [nodeId, (await isProvenGone(this.pool, this.keys, nodeId)) ? 'gone' : 'lapsed'];
      }),
    );
    return new Map(states);
  }

  private async aliveSet(nodeIds: Set<string>): Promise<Set<string>> {
    const checks = await Promise.all([...nodeIds].map(async (nodeId) => [nodeId, await this.isAlive(nodeId)] as const));
    return new Set(checks.filter(([, alive]) => alive).map(([nodeId]) => nodeId));
  }

  // ---------------------------------------------------------------- recovery

  /** Runs one recovery at a time; a request during a run triggers one more run after it. */
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

  private async recover(): Promise<void> {
    let backoffMs = 100;
    while (this.state === 'connected') {
      try {
        // Bounded: a command on a connection that broke may never settle, and recovery must go on.
        const lease = await beforeDeadline(this.liveness!.reacquire(), Date.now() + this.nodeTtlMs, () => new Error(`liveness not answered within ${this.nodeTtlMs} ms`));
        // Taken over or conflict: onLeaseEvent (told by reacquire) handles it.
        if (lease !== 'resumed') return;
        this.liveness!.start();
        // After a reconnect Redis may have lost presence (a restart): other nodes may still be
        // re-registering their sockets, so an absent entry means "unknown" for a while.
        this.liveness!.noteDisturbance();
        await this.consumer?.resync();
        await this.rehydrate();
        this.counters.recoveries++;
        return;
      } catch (error) {
        this.logger.debug?.(`recovery attempt failed: ${(error as Error).message}`);
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 2000);
      }
    }
  }

  private onLeaseEvent(event: LeaseEvent): void {
    if (this.state !== 'connected') return;
    switch (event) {
      case 'suspended':
        this.source?.onLeaseChange?.('suspended');
        return;
      case 'resumed':
        this.source?.onLeaseChange?.('resumed');
        // The key may have been lost with Redis's data: re-read the inbox and re-register presence.
        this.scheduleRecover('liveness key taken back');
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
   * A survivor took this node over while its lease had lapsed (it was frozen, or cut off from
   * Redis): everything read before was answered there. Stop reading at once (nothing more is
   * acknowledged), let the node drop what it held and close its sockets, then come back under
   * a fresh token with a new reader, which answers what is left of the old pending entries as
   * possibly delivered and never sends them.
   */
  private async rejoin(): Promise<void> {
    const nodeId = this.nodeId!;
    this.logger.error(`node ${nodeId} was taken over while its lease had lapsed; dropping what it read and rejoining`);
    this.consumer?.abort();
    this.consumer = null;
    this.source?.onLeaseChange?.('fenced');
    let backoffMs = 100;
    while (this.state === 'connected') {
      try {
        if (!(await this.liveness!.renew())) {
          this.onConflict();
          return;
        }
        this.liveness!.start();
        if (this.inboxHandler) await this.startConsumer(nodeId, this.inboxHandler);
        this.counters.rejoins++;
        this.logger.log(`node ${nodeId} rejoined the cluster under a fresh lease`);
        this.source?.onLeaseChange?.('rejoined');
        return;
      } catch (error) {
        this.logger.debug?.(`rejoining failed: ${(error as Error).message}`);
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 2000);
      }
    }
  }

  /** Another process took our node id while we were cut off: stop acting as this node. */
  private onConflict(): void {
    if (this.state !== 'connected') return;
    this.state = 'conflict';
    this.logger.error(
      `node id ${this.nodeId} is now held by another process; this node stops reading its inbox, closes its sockets and is not live`,
    );
    this.stopTimers();
    void this.takeover?.stop();
    this.consumer?.abort();
    this.source?.onLeaseChange?.('lost');
  }

  /** Re-registers local sockets (see the class comment). Returns what happened to each. */
  private async rehydrate(records?: PresenceRecord[]): Promise<RehydrateResult[]> {
    const nodeId = this.nodeId!;
    const local = records ?? this.localRecords();
    if (local.length === 0) return [];
    const results = await this.presence.rehydrate(local, nodeId);
    const unclaimed = new Set(this.source!.localPresence().filter((r) => r.epoch === 0).map((r) => r.identity));
    const evictions: Array<{ target: string; message: ClusterMessage }> = [];
    for (const result of results) {
      const { record, status, existing } = result;
      if (status === 'refused') {
        this.counters.rehydrateRefused++;
        if (existing && existing.nodeId !== nodeId) {
          // A newer connection lives elsewhere: our socket is stale. Tell our own router.
          evictions.push({
            target: nodeId,
            message: { kind: 'evict', identity: record.identity, epoch: record.epoch, newOwner: existing.nodeId },
          });
        }
        continue;
      }
      this.counters.rehydrated++;
      if (unclaimed.has(record.identity)) this.adopted.set(record.identity, record.epoch);
      if (status === 'displaced' && existing && existing.nodeId !== nodeId && (await this.isAlive(existing.nodeId))) {
        evictions.push({
          target: existing.nodeId,
          message: { kind: 'evict', identity: record.identity, epoch: existing.epoch, newOwner: nodeId },
        });
      }
    }
    for (const { target, message } of evictions) {
      await this.sendToNode(target, [message]);
      this.counters.evictsSent++;
    }
    return results;
  }

  /** Local sockets as presence records, with adopted epochs for those that never got one. */
  private localRecords(): PresenceRecord[] {
    const nodeId = this.nodeId!;
    const snapshot = this.source!.localPresence();
    const records = snapshot.map((record) => ({
      ...record,
      nodeId,
      epoch: record.epoch > 0 ? record.epoch : (this.adopted.get(record.identity) ?? 0),
    }));
    if (this.adopted.size > 0) {
      // Forget adopted epochs of sockets that closed (their entries go) or got a real epoch since.
      const epochs = new Map(snapshot.map((record) => [record.identity, record.epoch]));
      for (const [identity, epoch] of this.adopted) {
        const localEpoch = epochs.get(identity);
        if (localEpoch === 0) continue;
        this.adopted.delete(identity);
        if (localEpoch === undefined) void this.presence.remove(identity, nodeId, epoch).catch(() => undefined);
      }
    }
    return records;
  }

  /**
   * Registers these identities' local sockets again soon, with a backoff from 100 ms to 2 s
   * while it fails: a charge point accepted while Redis refused writes becomes reachable
   * within seconds of recovery, not at the next refresh (a third of the presence TTL).
   */
  private retryRegistration(identities: readonly string[]): void {
    for (const identity of identities) this.unregistered.add(identity);
    if (this.registrationRetry || this.unregistered.size === 0 || this.state !== 'connected') return;
    this.registrationRetry = setTimeout(() => void this.registerUnregistered(), this.registrationBackoffMs);
    this.registrationRetry.unref();
  }

  private async registerUnregistered(): Promise<void> {
    this.registrationRetry = null;
    if (this.state !== 'connected') return;
    const pending = new Set(this.unregistered);
    this.unregistered.clear();
    // Sockets that closed meanwhile need nothing; the others are re-registered as after an outage.
    const records = this.localRecords().filter((record) => pending.has(record.identity));
    try {
      if (records.length > 0) await this.rehydrate(records);
      this.registrationBackoffMs = REGISTRATION_RETRY_MIN_MS;
    } catch (error) {
      this.logger.debug?.(`presence registration retry failed: ${(error as Error).message}`);
      this.registrationBackoffMs = Math.min(this.registrationBackoffMs * 2, REGISTRATION_RETRY_MAX_MS);
      this.retryRegistration(records.map((record) => record.identity));
      return;
    }
    this.retryRegistration([]);
  }

  private schedulePresenceRefresh(): void {
    const intervalMs = Math.max(100, Math.floor(this.presenceTtlMs / 3));
    this.presenceTimer = setTimeout(() => {
      void this.refreshPresence().finally(() => {
        if (this.state === 'connected') this.schedulePresenceRefresh();
      });
    }, intervalMs);
    this.presenceTimer.unref();
  }

  /**
   * The periodic refresh (also callable at any time): extends our entries' TTL; re-registers the
   * ones Redis lost and the ones that never got an epoch. A socket is only in the local
   * registry once its claim returned, so this never claims a connection whose claim is in flight.
   */
  async refreshPresence(): Promise<void> {
    if (this.state !== 'connected' || this.recovering) return;
    const records = this.localRecords();
    let toRegister: PresenceRecord[] = records.filter((record) => record.epoch === 0);
    try {
      const { missing } = await this.presence.refresh(records, this.nodeId!);
      toRegister = [...missing, ...toRegister];
      if (toRegister.length > 0) await this.rehydrate(toRegister);
    } catch (error) {
      this.counters.presenceRefreshFailures++;
      this.logger.debug?.(`presence refresh failed: ${(error as Error).message}`);
      this.retryRegistration(toRegister.map((record) => record.identity));
    }
  }

  /**
   * A failover can lose writes its old master answered around the time we noticed it (a master
   * that stalled answers what it had queued, then resyncs as a replica), such as the claim of a
   * socket that opened just after the recovery re-registered ours. Left alone, that socket would
   * be missing from presence until the periodic refresh (a third of the presence TTL), and every
   * other node would answer NotConnected for it. So our sockets are re-registered once more a TTL
   * later (retried by the periodic refresh if Redis fails again).
   */
  private recheckPresenceLater(): void {
    if (this.presenceRecheck) clearTimeout(this.presenceRecheck);
    this.presenceRecheck = setTimeout(() => {
      this.presenceRecheck = null;
      void (async () => {
        await this.recovering;
        if (this.state !== 'connected') return;
        // As a recovery does: re-registers what is missing, never over a newer connection.
        await this.rehydrate();
      })().catch((error: unknown) => this.logger.debug?.(`presence re-check failed: ${(error as Error).message}`));
    }, this.nodeTtlMs);
    this.presenceRecheck.unref();
  }

  private stopTimers(): void {
    if (this.presenceTimer) clearTimeout(this.presenceTimer);
    this.presenceTimer = null;
    if (this.presenceRecheck) clearTimeout(this.presenceRecheck);
    this.presenceRecheck = null;
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
    if (!this.liveness?.isHeld) return 'liveness key not held';
    if (this.consumer && !this.consumer.isRunning) return 'inbox consumer not running';
    return this.driver.healthIssue() ?? this.pool.healthIssue();
  }

  /**
   * Readiness: every writer completes a real write (a short-lived key in this node's slot: a
   * Redis that answers PING but refuses writes, e.g. at maxmemory with noeviction, reports
   * down) and the subscriber answers PING within `timeoutMs`; the blocking reader (which sits
   * in XREADGROUP BLOCK, so a PING would queue behind it) counts as up while ready and its
   * reads keep returning; the liveness key is still ours; the consumer runs.
   */
  async probe(timeoutMs: number): Promise<TransportProbe> {
    const connections: TransportProbe['connections'] = {};
    const probeKey = this.nodeId === null ? null : this.keys.probe(this.nodeId);
    const pings: Promise<void>[] = this.pool.drivers.map(async (driver, index) => {
      connections[index === 0 ? 'writer' : `writer-${index}`] =
        probeKey === null ? await pingWithin(driver.writer, timeoutMs) : await writeWithin(driver.writer, probeKey, timeoutMs);
    });
    if (this.broadcaster.activeSubscriptions > 0) {
      pings.push(
        pingWithin(this.driver.subscriber, timeoutMs).then((result) => {
          connections.subscriber = result;
        }),
      );
    }
    await Promise.all(pings);
    const consumer = this.consumer;
    if (consumer) {
      const blocking = this.driver.blocking;
      const sinceRead = Date.now() - consumer.lastReadAt;
      connections.blocking =
        blocking.status !== 'ready'
          ? { ok: false, rttMs: null, error: `connection ${blocking.status}` }
          : sinceRead > consumer.blockTimeMs + timeoutMs
            ? { ok: false, rttMs: null, error: `no read returned for ${sinceRead} ms` }
            : { ok: true, rttMs: null };
    }
    // Lag and pending need Redis; with a writer down, report the last values read instead of waiting.
    const writerUp = Object.values(connections).every((connection) => connection.ok);
    const metrics = writerUp ? await this.metrics() : { consumerLag: this.lastMetrics.lag, pendingMessages: this.lastMetrics.pending };
    return {
      connections,
      livenessHeld: this.state === 'connected' && (this.liveness?.isHeld ?? false),
      consumerRunning: consumer?.isRunning ?? false,
      consumerLag: metrics.consumerLag,
      pendingMessages: metrics.pendingMessages,
    };
  }

  /**
   * Every enumerable value is a number (Prometheus, JSON). The seed's shape,
   * `(await adapter.metrics()).redisConsumerLag.pendingMessages`, is there too, not enumerable.
   */
  async metrics(): Promise<RedisAdapterMetrics> {
    const metrics = await this.readMetrics();
    const redisConsumerLag = { pendingMessages: metrics.pendingMessages, lag: metrics.consumerLag };
    return Object.defineProperty(metrics, 'redisConsumerLag', { value: redisConsumerLag, enumerable: false }) as RedisAdapterMetrics;
  }

  private async readMetrics(): Promise<AdapterMetrics> {
    if (this.consumer) {
      try {
        this.lastMetrics = await this.consumer.metrics();
      } catch {
        // Redis unreachable: report the last values read.
      }
    }
    const consumer = this.consumer;
    const takeover = this.takeover;
    return {
      pendingMessages: this.lastMetrics.pending,
      consumerLag: this.lastMetrics.lag,
      activeSubscriptions: this.broadcaster.activeSubscriptions + (consumer?.isRunning ? 1 : 0),
      streamLength: this.lastMetrics.length,
      sent: this.counters.sent,
      sendFailures: this.counters.sendFailures,
      commandsRefused: this.counters.commandsRefused,
      received: consumer?.received ?? 0,
      acked: consumer?.acked ?? 0,
      inFlightHandlers: consumer?.inFlightCount ?? 0,
      malformedMessages: (consumer?.malformed ?? 0) + this.broadcaster.malformed,
      inboxEntriesLost: consumer?.lost ?? 0,
      handlerErrors: (consumer?.handlerErrors ?? 0) + this.broadcaster.handlerErrors,
      broadcastsSent: this.broadcaster.sent,
      broadcastsReceived: this.broadcaster.received,
      takeovers: takeover?.takeovers ?? 0,
      takeoverForwarded: takeover?.forwarded ?? 0,
      takeoverAnswered: takeover?.answered ?? 0,
      takeoverDropped: takeover?.dropped ?? 0,
      redisErrors: this.pool.errors,
      reconnects: this.pool.reconnects,
      recoveries: this.counters.recoveries,
      presenceRehydrated: this.counters.rehydrated,
      presenceRehydrateRefused: this.counters.rehydrateRefused,
      evictsSent: this.counters.evictsSent,
      heartbeatFailures: this.liveness?.failures ?? 0,
      leaseSuspensions: this.liveness?.suspensions ?? 0,
      leaseTakenOver: this.liveness?.takenOver ?? 0,
      rejoins: this.counters.rejoins,
      poolSize: this.pool.size,
      healthy: this.isHealthy() ? 1 : 0,
    };
  }

  private requireConnected(): string {
    if (this.state !== 'connected' || this.nodeId === null) {
      throw new ClusterUnavailableError(this.state === 'conflict' ? 'node id taken over by another process' : `adapter is ${this.state}`);
    }
    return this.nodeId;
  }

  private unavailable(error: unknown): Error {
    return redisUnavailable(error, redisLocation(this.driver.writer));
  }
}

const REDELIVERED: DeliveryInfo = Object.freeze({ redelivered: true });

/** Member 0 of the pool: built from `url` or `cluster`, the user's clients, or the user's driver. */
const isRedisClient = (value: unknown): boolean => value instanceof Redis || value instanceof Cluster;

/**
 * The seed's Redis Cluster form: `pubClient: {} as any, subClient: {} as any, driverFactory: () =>
 * clusterDriver`. The placeholders are not clients; the factory's driver is the primary.
 */
function seedFactoryDriver(options: RedisAdapterOptions): RedisDriver | null {
  if (options.pubClient === undefined || isRedisClient(options.pubClient)) return null;
  // With another source given as well, the one-source rule names the conflict.
  if (options.url !== undefined || options.cluster !== undefined || options.driver !== undefined) return null;
  if (typeof options.driverFactory !== 'function') {
    throw new InvalidOptionsError(
      'pubClient',
      'must be an ioredis Redis or Cluster client; for Redis Cluster give cluster: { nodes }, or placeholders with driverFactory: () => new ClusterDriver({ nodes })',
    );
  }
  if (options.blockingClient !== undefined && !isRedisClient(options.blockingClient)) {
    throw new InvalidOptionsError('blockingClient', 'must be an ioredis Redis or Cluster client');
  }
  const made = options.driverFactory(0);
  if (made instanceof RedisDriver) return made;
  if (isRedisClient(made)) return createDriver({ pubClient: made });
  throw new InvalidOptionsError('driverFactory', 'must return a RedisDriver (createDriver(...) or new ClusterDriver(...)) or an ioredis client');
}

function primaryDriver(options: RedisAdapterOptions, logger: ClusterLogger): RedisDriver {
  const fromFactory = seedFactoryDriver(options);
  if (fromFactory) return fromFactory;
  const sources = (['url', 'cluster', 'pubClient', 'driver'] as const).filter((name) => options[name] !== undefined);
  if (sources.length > 1) {
    throw new InvalidOptionsError(sources[0], `give only one of url, cluster, pubClient and driver (got ${sources.join(' and ')})`);
  }
  if (sources.length === 0) throw new InvalidOptionsError('url', 'one of url, cluster, pubClient or driver is required');
  if (options.driver !== undefined) {
    if (!(options.driver instanceof RedisDriver)) {
      throw new InvalidOptionsError('driver', 'must be a RedisDriver (createDriver(...) or new ClusterDriver(...))');
    }
    if (options.subClient || options.blockingClient) {
      throw new InvalidOptionsError(options.subClient ? 'subClient' : 'blockingClient', 'give it to the driver, not next to it');
    }
    return options.driver;
  }
  if (options.cluster !== undefined) {
    if (options.cluster === null || typeof options.cluster !== 'object') throw new InvalidOptionsError('cluster', 'must be an object');
    if (options.subClient || options.blockingClient) {
      throw new InvalidOptionsError(options.subClient ? 'subClient' : 'blockingClient', 'cannot be combined with cluster');
    }
    const { redisOptions, ...cluster } = options.cluster;
    if (redisOptions !== undefined && (redisOptions === null || typeof redisOptions !== 'object')) {
      throw new InvalidOptionsError('cluster.redisOptions', 'must be an object');
    }
    return new ClusterDriver({ ...cluster, redisOptions: { ...options.redisOptions, ...redisOptions }, logger });
  }
  return createDriver({
    url: options.url,
    redisOptions: options.redisOptions,
    pubClient: options.pubClient,
    subClient: options.subClient,
    blockingClient: options.blockingClient,
    logger,
  });
}

function readyTimeoutOf(driver: RedisDriver): number {
  return driver instanceof ClusterDriver ? driver.readyTimeoutMs : 10_000;
}

function integerOption(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionsError(name, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** Waits for a best-effort step at most STEP_TIMEOUT_MS; its failure is ignored. */
async function bounded(step: Promise<unknown> | undefined): Promise<void> {
  if (step) await settleWithin(step.catch(() => undefined), STEP_TIMEOUT_MS);
}
