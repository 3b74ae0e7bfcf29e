import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { ClusterLogger } from '../cluster/logger.js';
import { InvalidOptionsError } from '../protocol/errors.js';
import { ClusterDriver, type ClusterDriverOptions } from './cluster-driver.js';
import { RedisConnectionPool, validatePoolOptions, type DriverFactory } from './redis-connection-pool.js';
import { createDriver, DEFAULT_REDIS_LOGGER, RedisDriver, type RedisClient } from './redis-driver.js';
import { DEFAULT_PREFIX, RedisKeys } from './redis-keys.js';

/**
 * The Redis transport's options: their types, their checks (a typed error naming the option),
 * and the connections they describe (the writer pool and member 0, its driver).
 */

/** The plain-option form of a {@link ClusterDriver} (`redis: { cluster: { nodes, natMap } }`). */
export type RedisClusterOptions = Omit<ClusterDriverOptions, 'logger' | 'redisOptions'> & {
  /** Node connection options for this cluster only (merged over the adapter's `redisOptions`). */
  redisOptions?: RedisOptions;
};


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
  /**
   * How long a worker thread keeps renewing this node's liveness key while the event loop does
   * not turn (an overload, a long GC): the node keeps its lease and its sockets instead of being
   * taken over. Past it the main thread counts as hung and the key lapses. 0: no thread, only the
   * event loop renews the key (default 30000).
   */
  stallToleranceMs?: number;
  /** How often survivors look for lapsed nodes to take over (default 1000). */
  takeoverIntervalMs?: number;
  /** Inbox entries read at once (default 100). */
  readBatchSize?: number;
  /** Inbox handlers running at once before reading pauses (default 1000). */
  maxInFlight?: number;
  logger?: ClusterLogger;
}

/** The options, checked, with their defaults. */
export interface RedisSettings {
  keys: RedisKeys;
  logger: ClusterLogger;
  /** A cap on commands waiting, not on history (the reader trims what it acknowledged). */
  streamMaxLen: number;
  streamTtlMs: number;
  presenceTtlMs: number;
  nodeTtlMs: number;
  stallToleranceMs: number;
  takeoverIntervalMs: number;
  readBatchSize: number;
  maxInFlight: number;
}

export function redisSettings(options: RedisAdapterOptions): RedisSettings {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('redis', 'must be an object');
  const settings = {
    keys: new RedisKeys(options.prefix ?? DEFAULT_PREFIX),
    streamMaxLen: integerOption('streamMaxLen', options.streamMaxLen, 10_000, 10, 10_000_000),
    streamTtlMs: integerOption('streamTtlSeconds', options.streamTtlSeconds, 300, 1, 30 * 86_400) * 1000,
    presenceTtlMs: integerOption('presenceTtlSeconds', options.presenceTtlSeconds, 300, 1, 30 * 86_400) * 1000,
    nodeTtlMs: integerOption('nodeTtlMs', options.nodeTtlMs, 5000, 300, 600_000),
    stallToleranceMs: integerOption('stallToleranceMs', options.stallToleranceMs, 30_000, 0, 3_600_000),
    takeoverIntervalMs: integerOption('takeoverIntervalMs', options.takeoverIntervalMs, 1000, 50, 60_000),
    readBatchSize: integerOption('readBatchSize', options.readBatchSize, 100, 1, 10_000),
    maxInFlight: integerOption('maxInFlight', options.maxInFlight, 1000, 1, 1_000_000),
  };
  if (options.logger !== undefined && (typeof options.logger !== 'object' || typeof options.logger.warn !== 'function')) {
    throw new InvalidOptionsError('logger', 'must have log, warn and error methods');
  }
  validatePoolOptions(options);
  return { ...settings, logger: options.logger ?? DEFAULT_REDIS_LOGGER };
}

/** Member 0 (the driver) and the writer pool around it; nothing is left open when the options are refused. */
export function redisConnections(options: RedisAdapterOptions, logger: ClusterLogger): { driver: RedisDriver; pool: RedisConnectionPool } {
  const driver = primaryDriver(options, logger);
  let pool: RedisConnectionPool;
  try {
    pool = new RedisConnectionPool(driver, options);
  } catch (error) {
    driver.destroy();
    throw error;
  }
  const mixed = pool.drivers.find((member) => member.isCluster !== driver.isCluster);
  if (mixed) {
    pool.destroy();
    driver.destroy();
    throw new InvalidOptionsError(
      'driverFactory',
      `made a ${mixed.isCluster ? 'Redis Cluster' : 'standalone Redis'} driver for a pool on ${driver.isCluster ? 'Redis Cluster' : 'standalone Redis'}`,
    );
  }
  return { driver, pool };
}

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

export function readyTimeoutOf(driver: RedisDriver): number {
  return driver instanceof ClusterDriver ? driver.readyTimeoutMs : 10_000;
}

function integerOption(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionsError(name, `must be an integer from ${min} to ${max}`);
  }
  return value;
}
