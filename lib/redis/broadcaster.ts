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
  /** How often classic subscriptions are asserted again (default {@link RESUBSCRIBE_INTERVAL_MS}). */
  resubscribeIntervalMs?: number;
}

/** How often a classic subscription is asserted again: a lost one deafens a node for at most this long. */
export const RESUBSCRIBE_INTERVAL_MS = 2_000;

/**
 * Cluster-wide fan-out over pub/sub (JSON messages): classic PUBLISH/SUBSCRIBE, which a Redis
 * Cluster forwards to every node over its bus, or sharded SPUBLISH/SSUBSCRIBE, which stays on
 * the shard that owns the channel's slot. Delivery is at most once: a node that is
 * disconnected at that moment misses the message (broadcasts carry a deadline and their
 * callers count the nodes that answered). ioredis resubscribes after a reconnect, a failover
 * or a slot migration, except that an ioredis Cluster client can come out of an outage of the
 * whole cluster with its pub/sub connection subscribed to nothing (it copies the channels from
 * whichever connection it last marked active, racing its own reconnects): the node would never
 * hear a broadcast again. So classic subscriptions are asserted again every few seconds
 * (SUBSCRIBE of a channel already subscribed changes nothing).
 */
export class Broadcaster {
  private readonly handlers = new Map<string, Handler>();
  private listening: RedisClient | null = null;
  private resubscribeTimer: NodeJS.Timeout | null = null;
  private resubscribing = false;
  received = 0;
  sent = 0;
  malformed = 0;
  handlerErrors = 0;
  /** Periodic re-SUBSCRIBEs that failed (Redis unreachable: tried again at the next interval). */
  resubscribeFailures = 0;

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
      this.keepSubscribed();
    }
  }

  async unsubscribe(channel: string): Promise<void> {
    if (!this.handlers.delete(channel)) return;
    if (this.handlers.size === 0) this.stopResubscribing();
    if (this.mode === 'sharded') await this.listening?.sunsubscribe(channel);
    else await this.listening?.unsubscribe(channel);
  }

  /** Forgets every subscription without talking to Redis (the connection is closing). */
  detach(): void {
    this.stopResubscribing();
    this.handlers.clear();
    this.listening?.off('message', this.onMessage);
    this.listening?.off('smessage', this.onMessage);
    this.listening = null;
  }

  /** Classic mode: SUBSCRIBE again every interval to what we listen to (one attempt in flight at a time). */
  private keepSubscribed(): void {
    if (this.resubscribeTimer || this.mode !== 'classic') return;
    this.resubscribeTimer = setInterval(() => void this.resubscribe(), this.options.resubscribeIntervalMs ?? RESUBSCRIBE_INTERVAL_MS);
    this.resubscribeTimer.unref?.();
  }

  private async resubscribe(): Promise<void> {
    const subscriber = this.listening;
    if (this.resubscribing || !subscriber || this.handlers.size === 0) return;
    this.resubscribing = true;
    try {
      await subscriber.subscribe(...this.handlers.keys());
    } catch {
      this.resubscribeFailures++;
    } finally {
      this.resubscribing = false;
    }
  }

  private stopResubscribing(): void {
    if (this.resubscribeTimer) clearInterval(this.resubscribeTimer);
    this.resubscribeTimer = null;
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
