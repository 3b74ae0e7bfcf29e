// The Redis transport's public surface, for the package index to re-export.
export { RedisAdapter, type RedisAdapterOptions } from './redis-adapter.js';
export {
  createDriver,
  RedisDriver,
  type ConnectionRole,
  type ConnectionStatus,
  type DriverOptions,
  type RedisClient,
} from './redis-driver.js';
export { RedisConnectionPool, type ConnectionPoolOptions, type DriverFactory } from './redis-connection-pool.js';
export { PresenceStore, type RefreshResult, type RehydrateResult, type RehydrateStatus } from './presence-store.js';
export { StreamConsumer, type StreamConsumerMetrics, type StreamConsumerOptions } from './stream-consumer.js';
export { Broadcaster } from './broadcaster.js';
export { NodeLiveness } from './node-liveness.js';
export { NodeTakeover, type TakeoverReport } from './node-takeover.js';
export { InvalidKeyPartError, keySlot, RedisKeys } from './redis-keys.js';
