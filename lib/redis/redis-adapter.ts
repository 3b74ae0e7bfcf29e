import type { Address, Subscription } from '../cluster/address.js';
import type { ClusterMessage } from '../cluster/envelope.js';
import type {
  ClusterMessageHandler,
  EventAdapterInterface,
  LostNodeClaim,
  PresenceClaim,
  PresenceRecord,
  PresenceSnapshotSource,
  TransportProbe,
} from '../cluster/event-adapter.interface.js';
import type { ClusterLogger } from '../cluster/logger.js';
import { settleWithin } from '../cluster/time-bounds.js';
import { ClusterUnavailableError, InvalidOptionsError } from '../protocol/errors.js';
import type { OcppProtocol } from '../protocol/protocol.js';
import { Broadcaster } from './broadcaster.js';
import { LeaseRecovery } from './lease-recovery.js';
import { NODE_CLEANUP } from './lua-scripts.js';
import { RedisNodeLoss } from './node-loss-primitives.js';
import { NodeLiveness } from './node-liveness.js';
import { RedisParkedCommandStore } from './parked-command-store.js';
import { PresenceReads } from './presence-reads.js';
import { PresenceRegistration } from './presence-registration.js';
import { PresenceStore } from './presence-store.js';
import { readyTimeoutOf, redisConnections, redisSettings, type RedisAdapterOptions, type RedisSettings } from './redis-adapter-options.js';
import type { RedisConnectionPool } from './redis-connection-pool.js';
import type { RedisDriver } from './redis-driver.js';
import { INBOX_GROUP, keyPartProblem, type RedisKeys } from './redis-keys.js';
import { RedisMessaging } from './redis-messaging.js';
import { redisLocation, redisUnavailable } from './redis-outage.js';
import type { StreamConsumer } from './stream-consumer.js';
import { RedisTransportReport, type RedisAdapterMetrics } from './transport-report.js';

export type { RedisAdapterOptions, RedisClusterOptions } from './redis-adapter-options.js';
export type { RedisAdapterMetrics } from './transport-report.js';

type State = 'idle' | 'connecting' | 'connected' | 'conflict' | 'closing' | 'closed';

/** TTL of the lock on a lost node, renewed before every batch the takeover reads. */
const TAKEOVER_LOCK_TTL_MS = 10_000;
/** Bound on each Redis step of disconnect(), so leaving never hangs on a dead server. */
const STEP_TIMEOUT_MS = 2000;

/** What exists only once the adapter joined the cluster as one node. */
interface Membership {
  nodeId: string;
  source: PresenceSnapshotSource;
  liveness: NodeLiveness;
  registration: PresenceRegistration;
  recovery: LeaseRecovery;
  nodeLoss: RedisNodeLoss;
}

/**
 * The Redis cluster transport, and its lifecycle: node inboxes on Redis Streams with consumer
 * groups (redis-messaging.ts), pub/sub for broadcasts, presence with epoch fencing in Lua
 * (presence-store.ts, presence-reads.ts, presence-registration.ts), node liveness with a short
 * TTL (node-liveness.ts, lease-recovery.ts), and the primitives of node loss
 * (node-loss-primitives.ts). Keys carry hash tags (Redis Cluster safe).
 *
 * After a Redis reconnect (or when the liveness key lapsed) it re-acquires liveness, recreates
 * its consumer group if the stream vanished, and re-registers `source.localPresence()` without
 * overwriting newer owners, telling the node what each re-registration found.
 */
export class RedisAdapter implements EventAdapterInterface {
  readonly name = 'redis';
  readonly keys: RedisKeys;
  private readonly settings: RedisSettings;
  private readonly logger: ClusterLogger;
  private readonly driver: RedisDriver;
  private readonly pool: RedisConnectionPool;
  private readonly presence: PresenceStore;
  private readonly broadcaster: Broadcaster;
  private readonly messaging: RedisMessaging;
  private readonly reads: PresenceReads;
  private readonly report: RedisTransportReport;
  /** `deliverWithinMs`: commands waiting for offline charge points, in Redis (they outlive every node). */
  readonly parkedCommands: RedisParkedCommandStore;

  private state: State = 'idle';
  private member: Membership | null = null;
  private removeReconnectListener: () => void = () => undefined;

  constructor(options: RedisAdapterOptions) {
    this.settings = redisSettings(options);
    const { keys, logger } = this.settings;
    this.keys = keys;
    this.logger = logger;
    ({ driver: this.driver, pool: this.pool } = redisConnections(options, logger));
    this.presence = new PresenceStore({ keys, pool: this.pool, presenceTtlMs: this.settings.presenceTtlMs });
    this.broadcaster = new Broadcaster({ subscriber: () => this.driver.subscriber, mode: () => this.driver.pubSubMode, logger });
    const unavailable = (error: unknown) => this.unavailable(error);
    this.messaging = new RedisMessaging({
      ...this.settings,
      ...{ driver: this.driver, pool: this.pool, broadcaster: this.broadcaster, unavailable },
      requireConnected: () => this.requireConnected(),
    });
    this.parkedCommands = new RedisParkedCommandStore(keys, (key) => this.pool.pick(key), unavailable);
    this.reads = new PresenceReads({ keys, pool: this.pool, presence: this.presence, liveness: () => this.member?.liveness ?? null, unavailable });
    this.report = new RedisTransportReport({
      ...{ keys, driver: this.driver, pool: this.pool, broadcaster: this.broadcaster },
      view: () => ({
        state: this.state,
        nodeId: this.member?.nodeId ?? null,
        liveness: this.member?.liveness ?? null,
        consumer: this.messaging.inboxConsumer,
        // Built only when read (metrics): health is asked on every upgrade.
        counters: () => ({
          ...this.messaging.counters,
          ...(this.member?.registration.counters ?? { rehydrated: 0, rehydrateRefused: 0, evictsSent: 0, presenceRefreshFailures: 0 }),
          ...(this.member?.recovery.counters ?? { recoveries: 0, rejoins: 0 }),
        }),
      }),
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

  /** This node's inbox reader (null until `subscribe('node')`). */
  get streamConsumer(): StreamConsumer | null {
    return this.messaging.inboxConsumer;
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
    const member = this.membership(nodeId, source);
    this.member = member;
    try {
      // Cluster writers fail fast while the cluster is unreachable, so wait for their first connect.
      await Promise.all(this.pool.drivers.map((driver) => driver.ready(readyTimeoutOf(driver))));
      await member.liveness.acquire();
    } catch (error) {
      this.state = 'idle';
      this.member = null;
      throw this.unavailable(error);
    }
    member.liveness.start();
    const removeReconnect = this.driver.onReconnect((role) => {
      if (role !== 'writer') return;
      // From the first command on the new connection: Redis may have restarted empty, and the
      // other nodes' sockets are not re-registered yet.
      member.liveness.noteDisturbance();
      member.recovery.schedule('redis connection re-established');
      member.recovery.recheckPresenceLater();
    });
    // A failover can lose the last writes its old master had not replicated: re-check liveness,
    // re-read our pending inbox entries and re-register presence the way a reconnect does.
    const removeTopology = this.driver.onTopologyChange(() => {
      // A failover may have lost the last writes of any node on that shard (presence claims too).
      member.liveness.noteDisturbance();
      member.recovery.schedule('redis cluster masters changed');
      member.recovery.recheckPresenceLater();
    });
    this.removeReconnectListener = () => {
      removeReconnect();
      removeTopology();
    };
    member.registration.start();
    this.state = 'connected';
  }

  /** The parts of this adapter that act as node `nodeId`. */
  private membership(nodeId: string, source: PresenceSnapshotSource): Membership {
    const { keys, logger, nodeTtlMs, streamTtlMs, presenceTtlMs, streamMaxLen, readBatchSize, stallToleranceMs } = this.settings;
    const isConnected = () => this.state === 'connected';
    const liveness = new NodeLiveness({
      ...{ keys, pool: this.pool, nodeId, ttlMs: nodeTtlMs, streamTtlMs, ownedTtlMs: presenceTtlMs, inboxCap: streamMaxLen, logger },
      stallToleranceMs,
      onLeaseEvent: (event) => recovery.onLeaseEvent(event),
    });
    const registration: PresenceRegistration = new PresenceRegistration({
      ...{ nodeId, source, presence: this.presence, presenceTtlMs, logger },
      isAlive: (id) => this.reads.isAlive(id),
      isActive: isConnected,
      isRecovering: (): boolean => recovery.isRecovering,
    });
    const recovery: LeaseRecovery = new LeaseRecovery({
      ...{ nodeId, source, liveness, messaging: this.messaging, registration, logger, nodeTtlMs },
      isConnected,
      onConflict: () => this.onConflict(),
    });
    const nodeLoss = new RedisNodeLoss({
      ...{ keys, pool: this.pool, selfId: nodeId, liveness, presence: this.presence },
      ...{ batchSize: readBatchSize, lockTtlMs: TAKEOVER_LOCK_TTL_MS },
    });
    return { nodeId, source, liveness, registration, recovery, nodeLoss };
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
    await this.messaging.stopReading();
    if (wasMember && this.member?.liveness.isHeld) await this.leave(this.member);
    this.member?.liveness.abandon();
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
    this.messaging.abortReading();
    this.member?.liveness.abandon();
    this.broadcaster.detach();
    this.pool.destroy();
    this.driver.destroy();
  }

  /** Clean leave: drop liveness, remove what we own, our keys when the inbox is empty, then announce. */
  private async leave({ nodeId, liveness }: Membership): Promise<void> {
    await bounded(liveness.release());
    await bounded(
      (async () => {
        await this.presence.removeMany(await this.presence.listOwned(nodeId), nodeId);
        // Entries that arrived after we stopped reading stay for a survivor's takeover to answer.
        const cleaned = await NODE_CLEANUP.run(this.pool.pick(this.keys.stream(nodeId)), this.keys.cleanupKeys(nodeId), [INBOX_GROUP]);
        if (cleaned === 1) await this.pool.pick(this.keys.registry).zrem(this.keys.registry, nodeId);
      })(),
    );
    // Last, so that a survivor poked by it finds the final state (and drains what was left, if anything).
    await bounded(this.messaging.publish({ allNodes: true }, { kind: 'nodeLeft', nodeId }));
  }

  /** Another process took our node id while we were cut off: stop acting as this node. */
  private onConflict(): void {
    if (this.state !== 'connected') return;
    this.state = 'conflict';
    this.logger.error(
      `node id ${this.member?.nodeId} is now held by another process; this node stops reading its inbox, closes its sockets and is not live`,
    );
    this.stopTimers();
    this.messaging.abortReading();
    this.member?.source.onLeaseChange?.('lost');
  }

  private stopTimers(): void {
    this.member?.registration.stop();
    this.member?.recovery.stop();
    this.member?.liveness.stop();
  }

  // ---------------------------------------------------------------- messaging (redis-messaging.ts)

  publish(to: Address, message: ClusterMessage): Promise<void> {
    return this.messaging.publish(to, message);
  }

  publishBatch(messages: ReadonlyArray<{ to: Address; message: ClusterMessage }>): Promise<void> {
    return this.messaging.publishBatch(messages);
  }

  subscribe(subscription: Subscription, handler: ClusterMessageHandler): Promise<void> {
    return this.messaging.subscribe(subscription, handler);
  }

  unsubscribe(subscription: Subscription): Promise<void> {
    return this.messaging.unsubscribe(subscription);
  }

  // ---------------------------------------------------------------- node loss (primitives; the policy is cluster/node-loss.ts)

  get lossCheckIntervalMs(): number {
    return this.settings.takeoverIntervalMs;
  }

  async lostNodes(): Promise<string[]> {
    if (this.state !== 'connected' || !this.member) return [];
    return this.member.nodeLoss.lostNodes();
  }

  async claimLostNode(nodeId: string): Promise<LostNodeClaim | null> {
    if (this.state !== 'connected' || !this.member || keyPartProblem(nodeId)) return null;
    return this.member.nodeLoss.claimLostNode(nodeId);
  }

  // ---------------------------------------------------------------- presence

  async setPresence(identity: string, protocol: OcppProtocol, connectedAt: number): Promise<PresenceClaim> {
    const nodeId = this.requireConnected();
    try {
      const { record, previous } = await this.presence.claim(identity, nodeId, protocol, connectedAt);
      const live = previous && (previous.nodeId === nodeId || (await this.reads.isAlive(previous.nodeId))) ? previous : null;
      return { record, previous: live };
    } catch (error) {
      // If the router accepts the socket anyway (epoch 0), it is registered once Redis takes writes.
      this.member?.registration.retry([identity]);
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

  async releaseClaim(claim: PresenceClaim): Promise<boolean> {
    const nodeId = this.requireConnected();
    try {
      return await this.presence.releaseClaim(claim.record.identity, nodeId, claim.record.epoch, claim.previous);
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  /** Re-registers this node's sockets now (the periodic refresh, callable at any time). */
  refreshPresence(): Promise<void> {
    return this.member?.registration.refresh() ?? Promise.resolve();
  }

  getPresence(identity: string): Promise<PresenceRecord | null> {
    return this.reads.getPresence(identity);
  }

  getPresenceBatch(identities: readonly string[]): Promise<Map<string, PresenceRecord>> {
    return this.reads.getPresenceBatch(identities);
  }

  listPresence(): Promise<PresenceRecord[]> {
    return this.reads.listPresence();
  }

  liveNodes(): Promise<string[]> {
    return this.reads.liveNodes();
  }

  isNodeAlive(nodeId: string): Promise<boolean> {
    return this.reads.isNodeAlive(nodeId);
  }

  isNodeKnownAlive(nodeId: string): boolean {
    return this.reads.isNodeKnownAlive(nodeId);
  }

  presenceDoubt(): string | null {
    return this.reads.presenceDoubt();
  }

  holdsLease(): boolean {
    const member = this.member;
    return this.state === 'connected' && member !== null && !member.recovery.isRejoining && member.liveness.hasLease();
  }

  // ---------------------------------------------------------------- health and metrics (transport-report.ts)

  isHealthy(): boolean {
    return this.report.healthIssue() === null;
  }

  healthIssue(): string | null {
    return this.report.healthIssue();
  }

  probe(timeoutMs: number): Promise<TransportProbe> {
    return this.report.probe(timeoutMs);
  }

  metrics(): Promise<RedisAdapterMetrics> {
    return this.report.metrics();
  }

  private requireConnected(): string {
    if (this.state !== 'connected' || this.member === null) {
      throw new ClusterUnavailableError(this.state === 'conflict' ? 'node id taken over by another process' : `adapter is ${this.state}`);
    }
    return this.member.nodeId;
  }

  private unavailable(error: unknown): Error {
    return redisUnavailable(error, redisLocation(this.driver.writer));
  }
}

/** Waits for a best-effort step at most STEP_TIMEOUT_MS; its failure is ignored. */
async function bounded(step: Promise<unknown> | undefined): Promise<void> {
  if (step) await settleWithin(step.catch(() => undefined), STEP_TIMEOUT_MS);
}
