import { SILENT_LOGGER } from '../../lib/cluster/logger.js';
import { RedisAdapter } from '../../lib/redis/redis-adapter.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { eventAdapterContract } from './event-adapter.contract.js';

let server: RedisServer;
eventAdapterContract('the Redis transport (standalone)', {
  setUp: async () => void (server = await startRedisServer()),
  tearDown: stopAllRedisServers,
  adapter: () => new RedisAdapter({ url: server.url, nodeTtlMs: 1_500, takeoverIntervalMs: 200, logger: SILENT_LOGGER }),
  crash: async (adapter) => (adapter as RedisAdapter).abort(),
  deathWithinMs: 10_000,
  parksCommands: true,
});
