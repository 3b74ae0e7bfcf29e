import { isAllNodes, type Address, type NodeAddress, type Subscription } from '../cluster/address.js';
import { PACKED_COMMANDS_VERSION, wireVersionOf, type ClusterMessage } from '../cluster/envelope.js';
import { BoundedSet } from '../cluster/bounded-set.js';
import type { ClusterMessageHandler, DeliveryInfo } from '../cluster/event-adapter.interface.js';
import { groupBy } from '../cluster/group-by.js';
import type { ClusterLogger } from '../cluster/logger.js';
import { InboxFullError, InvalidOptionsError } from '../protocol/errors.js';
import type { Broadcaster } from './broadcaster.js';
import type { RedisConnectionPool } from './redis-connection-pool.js';
import type { RedisClient, RedisDriver } from './redis-driver.js';
import { INBOX_GROUP, keyPartProblem, type RedisKeys } from './redis-keys.js';
import { StreamAppender } from './stream-appender.js';
import { StreamConsumer } from './stream-consumer.js';

export interface RedisMessagingDeps {
  keys: RedisKeys;
  driver: RedisDriver;
  pool: RedisConnectionPool;
  broadcaster: Broadcaster;
  logger: ClusterLogger;
  streamMaxLen: number;
  streamTtlMs: number;
  readBatchSize: number;
  maxInFlight: number;
  /** This node's id, or a ClusterUnavailableError when the adapter is not connected. */
  requireConnected: () => string;
  /** The Redis error in our words. */
  unavailable: (error: unknown) => Error;
}

const REDELIVERED: DeliveryInfo = Object.freeze({ redelivered: true });
/** Nodes remembered as reading packed commands (node ids churn with restarts; a few thousand is plenty). */
const PACKED_READERS_MEMORY = 10_000;

/**
 * Moving messages on Redis: a node address is two streams of that node (`inbox` lane: its
 * inbox; `replies` lane: its replies stream, read even while the inbox waits on charge
 * points), `ALL_NODES` is pub/sub. The lane comes with the address; nothing here reads a message
 * to decide where it goes.
 */
export class RedisMessaging {
  private readonly appender: StreamAppender;
  private consumer: StreamConsumer | null = null;
  private inboxHandler: ClusterMessageHandler | null = null;
  /**
   * Nodes whose replies said they read inbox entries packing several commands
   * (PACKED_COMMANDS_VERSION): commands to them are packed, to any other one entry each.
   */
  private readonly packedReaders = new BoundedSet<string>(PACKED_READERS_MEMORY);
  readonly counters = {
    sent: 0,
    sendFailures: 0,
    /** Commands this node wanted to append and the owner's full inbox refused. */
    commandsRefused: 0,
  };

  constructor(private readonly deps: RedisMessagingDeps) {
    this.appender = new StreamAppender(deps.keys, { fallbackCap: deps.streamMaxLen, ttlMs: deps.streamTtlMs }, (nodeId) =>
      this.packedReaders.has(nodeId),
    );
  }

  /** This node's inbox reader (null until subscribe('node')). */
  get inboxConsumer(): StreamConsumer | null {
    return this.consumer;
  }

  publish(to: Address, message: ClusterMessage): Promise<void> {
    if (isAllNodes(to)) return this.publishToAll(message);
    // One message to one node (every call, every reply): one promise from here to the append.
    try {
      return this.sendOne(checkedNode(to.node), to, message);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private async publishToAll(message: ClusterMessage): Promise<void> {
    const { broadcaster, pool, keys } = this.deps;
    try {
      await broadcaster.publish(pool.pick(keys.broadcastChannel), keys.broadcastChannel, message);
    } catch (error) {
      throw this.deps.unavailable(error);
    }
  }

  /** One MULTI per destination node (messages keep their order per node); broadcasts go through PUBLISH. */
  async publishBatch(messages: ReadonlyArray<{ to: Address; message: ClusterMessage }>): Promise<void> {
    const toNodes = messages.filter((item): item is { to: NodeAddress; message: ClusterMessage } => !isAllNodes(item.to));
    const byNode = groupBy(toNodes, ({ to }) => checkedNode(to.node));
    const sends: Promise<unknown>[] = messages.filter(({ to }) => isAllNodes(to)).map(({ message }) => this.publishToAll(message));
    for (const [target, list] of byNode) sends.push(this.sendToNode(target, list));
    const results = await Promise.allSettled(sends);
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) throw this.deps.unavailable(failed.reason);
  }

  async subscribe(subscription: Subscription, handler: ClusterMessageHandler): Promise<void> {
    const { broadcaster, keys } = this.deps;
    if (typeof handler !== 'function') throw new InvalidOptionsError('handler', 'must be a function');
    if (subscription === 'allNodes') {
      try {
        await broadcaster.subscribe(keys.broadcastChannel, (message) => handler(message));
      } catch (error) {
        throw this.deps.unavailable(error);
      }
      return;
    }
    if (subscription !== 'node') throw new InvalidOptionsError('subscription', `must be 'node' or 'allNodes' (got ${JSON.stringify(subscription)})`);
    const nodeId = this.deps.requireConnected();
    if (this.consumer) await this.consumer.stop();
    this.inboxHandler = handler;
    try {
      await this.startConsumer(nodeId, handler);
    } catch (error) {
      throw this.deps.unavailable(error);
    }
  }

  async unsubscribe(subscription: Subscription): Promise<void> {
    if (subscription === 'allNodes') {
      await this.deps.broadcaster.unsubscribe(this.deps.keys.broadcastChannel).catch((error) => {
        throw this.deps.unavailable(error);
      });
      return;
    }
    await this.stopReading();
  }

  /** Stops the inbox reader, letting what it handles settle (nothing more is read). */
  async stopReading(): Promise<void> {
    const consumer = this.consumer;
    this.consumer = null;
    await consumer?.stop();
  }

  /** Drops the inbox reader at once: nothing it read is acknowledged any more. */
  abortReading(): void {
    this.consumer?.abort();
    this.consumer = null;
  }

  /** A new reader for the handler subscribed before (after a takeover of this node, under a fresh lease). */
  async resumeReading(nodeId: string): Promise<void> {
    if (this.inboxHandler) await this.startConsumer(nodeId, this.inboxHandler);
  }

  private async startConsumer(nodeId: string, handler: ClusterMessageHandler): Promise<void> {
    const { keys, driver, pool, logger, readBatchSize, maxInFlight } = this.deps;
    const consumer = new StreamConsumer({
      streamKey: keys.stream(nodeId),
      repliesKey: keys.replies(nodeId),
      packedKey: keys.inboxPacked(nodeId),
      group: INBOX_GROUP,
      consumer: nodeId,
      reader: () => driver.blocking,
      writer: () => pool.pick(keys.stream(nodeId)),
      handler: (message, _entryId, redelivered) => {
        this.learnVersion(message);
        return redelivered ? handler(message, REDELIVERED) : handler(message);
      },
      logger,
      batchSize: readBatchSize,
      maxInFlight,
    });
    this.consumer = consumer;
    try {
      await consumer.start();
    } catch (error) {
      if (this.consumer === consumer) this.consumer = null;
      throw error;
    }
  }

  /** A reply in PACKED_COMMANDS_VERSION or newer: its writer reads packed commands (its answers are in the version both read). */
  private learnVersion(message: ClusterMessage): void {
    if (message.kind === 'reply' && wireVersionOf(message) >= PACKED_COMMANDS_VERSION) this.packedReaders.add(message.from);
  }

  /**
   * Appends to `target`'s streams (the replies lane to its replies stream, the inbox lane to its
   * inbox) through the pool member that carries that node (ordering). Rejects with
   * `InboxFullError` when the target's inbox refused the commands (none of them was appended).
   */
  private async sendToNode(target: string, messages: ReadonlyArray<{ to: NodeAddress; message: ClusterMessage }>): Promise<void> {
    const { keys, pool } = this.deps;
    const client = pool.pick(keys.stream(target));
    const byStream = groupBy(messages, ({ to }) => this.streamOf(target, to));
    const appends = [...byStream].map(([streamKey, list]) => this.appendCounted(client, target, streamKey, list.map(({ message }) => message)));
    const results = await Promise.allSettled(appends);
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) throw this.deps.unavailable(failed.reason);
  }

  /** {@link sendToNode} of one message, without the grouping and settling of a batch. */
  private sendOne(target: string, to: NodeAddress, message: ClusterMessage): Promise<void> {
    const { keys, pool } = this.deps;
    return this.appender.append(pool.pick(keys.stream(target)), target, this.streamOf(target, to), [message]).then(
      () => {
        this.counters.sent++;
      },
      (error: unknown) => {
        this.countFailure(error, 1);
        throw this.deps.unavailable(error);
      },
    );
  }

  private streamOf(target: string, to: NodeAddress): string {
    return to.lane === 'replies' ? this.deps.keys.replies(target) : this.deps.keys.stream(target);
  }

  private countFailure(error: unknown, count: number): void {
    if (error instanceof InboxFullError) this.counters.commandsRefused += count;
    else this.counters.sendFailures += count;
  }

  private async appendCounted(client: RedisClient, target: string, streamKey: string, messages: readonly ClusterMessage[]): Promise<void> {
    try {
      await this.appender.append(client, target, streamKey, messages);
      this.counters.sent += messages.length;
    } catch (error) {
      this.countFailure(error, messages.length);
      throw error;
    }
  }
}

/** A node id that can be part of a Redis key (a bad one is refused before anything is sent). */
function checkedNode(nodeId: string): string {
  if (typeof nodeId !== 'string') throw new InvalidOptionsError('to', 'must be inboxOf(id), repliesOf(id) or ALL_NODES');
  const problem = keyPartProblem(nodeId);
  if (problem) throw new InvalidOptionsError('to', `bad node id ${JSON.stringify(nodeId)}: ${problem}`);
  return nodeId;
}
