import type { ClusterMessage } from '../cluster/envelope.js';
import type { ClusterLogger } from '../cluster/logger.js';
import type { PubSubMode, RedisClient } from './redis-driver.js';
import { decodeMessage, encodeMessage } from './stream-publisher.js';

type Handler = (message: ClusterMessage) => void | Promise<void>;

export interface BroadcasterOptions {
  /** The pub/sub connection (created on first use). */
  subscriber: () => RedisClient;
  /** Classic PUBLISH/SUBSCRIBE (default) or sharded SPUBLISH/SSUBSCRIBE; every node must agree. */
  mode?: () => PubSubMode;
  logger: ClusterLogger;
}

/**
 * Cluster-wide fan-out over pub/sub (JSON messages): classic PUBLISH/SUBSCRIBE, which a Redis
 * Cluster forwards to every node over its bus, or sharded SPUBLISH/SSUBSCRIBE, which stays on
 * the shard that owns the channel's slot. Delivery is at most once: a node that is
 * disconnected at that moment misses the message (broadcasts carry a deadline and their
 * callers count the nodes that answered). ioredis resubscribes after a reconnect, a failover
 * or a slot migration.
 */
export class Broadcaster {
  private readonly handlers = new Map<string, Handler>();
  private listening: RedisClient | null = null;
  received = 0;
  sent = 0;
  malformed = 0;
  handlerErrors = 0;

  constructor(private readonly options: BroadcasterOptions) {}

  /** Channels subscribed to now. */
  get activeSubscriptions(): number {
    return this.handlers.size;
  }

  get mode(): PubSubMode {
    return this.options.mode?.() ?? 'classic';
  }

  async publish(client: RedisClient, channel: string, message: ClusterMessage): Promise<number> {
    const payload = encodeMessage(message);
    const receivers = Number(this.mode === 'sharded' ? await client.spublish(channel, payload) : await client.publish(channel, payload));
    this.sent++;
    return receivers;
  }

  async subscribe(channel: string, handler: Handler): Promise<void> {
    const subscriber = this.options.subscriber();
    if (this.listening !== subscriber) {
      subscriber.on('message', this.onMessage);
      subscriber.on('smessage', this.onMessage);
      this.listening = subscriber;
    }
    const isNew = !this.handlers.has(channel);
    this.handlers.set(channel, handler);
    if (isNew) {
      try {
        if (this.mode === 'sharded') await subscriber.ssubscribe(channel);
        else await subscriber.subscribe(channel);
      } catch (error) {
        this.handlers.delete(channel);
        throw error;
      }
    }
  }

  async unsubscribe(channel: string): Promise<void> {
    if (!this.handlers.delete(channel)) return;
    if (this.mode === 'sharded') await this.listening?.sunsubscribe(channel);
    else await this.listening?.unsubscribe(channel);
  }

  /** Forgets every subscription without talking to Redis (the connection is closing). */
  detach(): void {
    this.handlers.clear();
    this.listening?.off('message', this.onMessage);
    this.listening?.off('smessage', this.onMessage);
    this.listening = null;
  }

  private readonly onMessage = (channel: string, raw: string): void => {
    const handler = this.handlers.get(channel);
    if (!handler) return;
    const message = decodeMessage(raw);
    if (!message) {
      this.malformed++;
      return;
    }
    this.received++;
    Promise.resolve()
      .then(() => handler(message))
      .catch((error: unknown) => {
        this.handlerErrors++;
        this.options.logger.warn(`broadcast handler failed: ${(error as Error)?.message ?? String(error)}`);
      });
  };
}
