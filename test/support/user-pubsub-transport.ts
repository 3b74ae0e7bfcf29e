import { Redis } from 'ioredis';
import { defineAdapter } from '../../lib/index.js';
import type { TransportCoreOptions } from '../../lib/cluster/transport-adapter.js';

/**
 * What a user writes from the seed's "Custom Adapters" page, over a real broker: Redis pub/sub
 * for messages and plain keys with a TTL for presence. Nothing of the library's Redis transport
 * is used; the core completes it (liveness, epochs, presence records).
 */
export function userPubSubAdapter(url: string, closed: Redis[], options: TransportCoreOptions = { heartbeatMs: 200 }) {
  const pub = new Redis(url);
  const sub = new Redis(url);
  closed.push(pub, sub);
  const handlers = new Map<string, (data: unknown) => void>();
  sub.on('message', (channel: string, message: string) => handlers.get(channel)?.(JSON.parse(message)));
  return defineAdapter(
    {
      name: 'user-pubsub',
      publish: async (channel, data) => {
        await pub.publish(channel, JSON.stringify(data));
      },
      publishBatch: async (messages) => {
        const pipeline = pub.pipeline();
        for (const { channel, data } of messages) pipeline.publish(channel, JSON.stringify(data));
        await pipeline.exec();
      },
      subscribe: async (channel, handler) => {
        handlers.set(channel, (data) => void handler(data));
        await sub.subscribe(channel);
      },
      unsubscribe: async (channel) => {
        handlers.delete(channel);
        await sub.unsubscribe(channel);
      },
      disconnect: async () => {
        await Promise.all([pub.quit(), sub.quit()]);
      },
      setPresence: async (identity, nodeId, ttl) => {
        await pub.set(`presence:${identity}`, nodeId, 'EX', ttl);
      },
      getPresence: async (identity) => pub.get(`presence:${identity}`),
      removePresence: async (identity) => {
        await pub.del(`presence:${identity}`);
      },
    },
    options,
  );
}

