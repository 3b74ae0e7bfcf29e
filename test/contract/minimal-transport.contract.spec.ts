import type { Redis } from 'ioredis';
import type { EventAdapterInterface } from '../../lib/cluster/event-adapter.interface.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { userPubSubAdapter } from '../support/user-pubsub-transport.js';
import { eventAdapterContract } from './event-adapter.contract.js';

// A seed-shaped transport a user writes over Redis pub/sub, completed by the core (defineAdapter).
let server: RedisServer;
const clientsOf = new Map<EventAdapterInterface, Redis[]>();
eventAdapterContract('a minimal seed-shaped transport completed by the core', {
  setUp: async () => void (server = await startRedisServer()),
  tearDown: async () => {
    for (const clients of clientsOf.values()) for (const client of clients) client.disconnect();
    await stopAllRedisServers();
  },
  adapter: () => {
    const clients: Redis[] = [];
    const adapter = userPubSubAdapter(server.url, clients);
    clientsOf.set(adapter, clients);
    return adapter;
  },
  crash: async (adapter) => {
    adapter.abort?.();
    for (const client of clientsOf.get(adapter) ?? []) client.disconnect();
  },
  deathWithinMs: 10_000,
  parksCommands: false,
});
