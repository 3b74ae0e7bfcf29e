import { SILENT_LOGGER } from '../../lib/cluster/logger.js';
import { RedisAdapter } from '../../lib/redis/redis-adapter.js';
import { startRedisCluster, stopAllRedisServers, type RedisClusterHandle } from '../support/redis-server.js';
import { eventAdapterContract } from './event-adapter.contract.js';

let cluster: RedisClusterHandle;
eventAdapterContract('the Redis transport (Redis Cluster, 3 masters)', {
  setUp: async () => void (cluster = await startRedisCluster(3)),
  tearDown: stopAllRedisServers,
  adapter: () => new RedisAdapter({ cluster: { nodes: cluster.nodes }, nodeTtlMs: 1_500, takeoverIntervalMs: 200, logger: SILENT_LOGGER }),
  crash: async (adapter) => (adapter as RedisAdapter).abort(),
  deathWithinMs: 10_000,
  parksCommands: true,
});
