import { Cluster, type ClusterOptions, type NatMap, type RedisOptions } from 'ioredis';
import type { ClusterLogger } from '../cluster/logger.js';
import { InvalidOptionsError } from '../protocol/errors.js';
import { DEFAULT_REDIS_LOGGER, RedisDriver, type ConnectionRole, type PubSubMode } from './redis-driver.js';

/** One seed node of a Redis Cluster. */
export interface ClusterNodeAddress {
  host: string;
  port: number;
}

export interface ClusterDriverOptions {
  /** Seed nodes, `{ host, port }` or `'host:port'`: any few nodes of the cluster; the rest is discovered. */
  nodes: ReadonlyArray<ClusterNodeAddress | string>;
  /**
   * Address translation for NAT (Docker, Kubernetes): the `'host:port'` a node announces
   * (CLUSTER SLOTS, MOVED, ASK) → the address this process reaches it at. An object, or a
   * function returning `{ host, port }` or null (unchanged).
   */
  natMap?: NatMap;
  /** ioredis options for every node connection (password, username, tls, connectionName...). */
  redisOptions?: RedisOptions;
  /** Further ioredis `Cluster` options (slotsRefreshInterval, maxRedirections, retryDelayOnFailover...). */
  clusterOptions?: Omit<ClusterOptions, 'natMap' | 'redisOptions' | 'shardedSubscribers'>;
  /**
   * Broadcasts over sharded pub/sub (SPUBLISH/SSUBSCRIBE) instead of classic PUBLISH
   * (default false). Every node of a deployment must use the same setting: a sharded
   * subscriber does not hear a classic PUBLISH, nor the other way round.
   */
  shardedPubSub?: boolean;
  /** How long `connect()` waits for the cluster to become ready (default 10000). */
  readyTimeoutMs?: number;
  logger?: ClusterLogger;
}

/** Per-node options a Cluster client sets itself (it connects each node on its own). */
const NODE_OPTIONS_SET_BY_CLUSTER = ['host', 'port', 'path', 'sentinels', 'retryStrategy', 'enableOfflineQueue', 'readOnly'] as const;

/**
 * Cluster defaults, chosen so that a command rides out a failover (cluster-node-timeout of a
 * few seconds plus the replica's election) instead of failing at its first "connection
 * closed", while a whole cluster that is unreachable fails commands at once.
 */
const CLUSTER_DEFAULTS: ClusterOptions = {
  maxRedirections: 16,
  retryDelayOnFailover: 300,
  retryDelayOnClusterDown: 300,
  retryDelayOnTryAgain: 100,
  slotsRefreshTimeout: 2000,
  // ioredis 6 refreshes its slot map only on MOVED unless told otherwise; a periodic refresh
  // notices failovers and resharding of slots nobody wrote to lately, and brings back
  // connections that were cut.
  slotsRefreshInterval: 5000,
};

/**
 * A {@link RedisDriver} on Redis Cluster: a writer, a subscriber and a blocking reader, each an
 * ioredis `Cluster` client (a blocking XREADGROUP on one stream goes to the master of that
 * stream's slot and follows it through failovers and resharding). Use it as the adapter's
 * `driver`, or as the pool's `driverFactory: () => new ClusterDriver({ nodes })`; the plain
 * adapter option `redis: { cluster: { nodes, natMap } }` builds one.
 *
 * The writer fails commands at once while the whole cluster is unreachable (a caller gets
 * ClusterUnavailableError instead of waiting for the outage to end); `ready()` waits for its
 * first connection.
 */
export class ClusterDriver extends RedisDriver {
  readonly nodes: readonly ClusterNodeAddress[];
  readonly shardedPubSub: boolean;
  readonly readyTimeoutMs: number;

  constructor(options: ClusterDriverOptions) {
    const settings = validateClusterDriverOptions(options);
    const logger = options.logger ?? DEFAULT_REDIS_LOGGER;
    super({ logger }, logger, (role) => buildClusterClient(settings, role));
    this.nodes = settings.nodes;
    this.shardedPubSub = settings.shardedPubSub;
    this.readyTimeoutMs = settings.readyTimeoutMs;
  }

  protected override defaultPubSubMode(): PubSubMode {
    return this.shardedPubSub ? 'sharded' : 'classic';
  }
}

interface ClusterSettings {
  nodes: ClusterNodeAddress[];
  natMap?: NatMap;
  redisOptions: RedisOptions;
  clusterOptions: ClusterOptions;
  shardedPubSub: boolean;
  readyTimeoutMs: number;
}

function buildClusterClient(settings: ClusterSettings, role: ConnectionRole): Cluster {
  const nodeOptions: Record<string, unknown> = { ...settings.redisOptions };
  for (const key of NODE_OPTIONS_SET_BY_CLUSTER) delete nodeOptions[key];
  const name = `${settings.redisOptions.connectionName ?? 'ocpp-cluster'}:${role}`;
  return new Cluster(
    settings.nodes.map(({ host, port }) => ({ host, port })),
    {
      ...CLUSTER_DEFAULTS,
      ...settings.clusterOptions,
      // Writers fail fast while the cluster is down; the subscriber and the blocking reader
      // wait for it (ioredis resubscribes, and the reader loops with its own backoff).
      enableOfflineQueue: role !== 'writer',
      shardedSubscribers: role === 'subscriber' && settings.shardedPubSub,
      ...(settings.natMap ? { natMap: settings.natMap } : {}),
      redisOptions: {
        // As on a standalone writer: a command fails after a few reconnects, never queues for minutes.
        maxRetriesPerRequest: 3,
        ...(nodeOptions as ClusterOptions['redisOptions']),
        connectionName: name,
        ...(role === 'blocking' ? { maxRetriesPerRequest: null } : {}),
      },
    },
  );
}

/** Checks a ClusterDriver's options; errors name the option (`cluster.nodes`, `cluster.natMap`...). */
export function validateClusterDriverOptions(options: ClusterDriverOptions, path = 'cluster'): ClusterSettings {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError(path, 'must be an object');
  const { nodes, natMap, redisOptions, clusterOptions, shardedPubSub, readyTimeoutMs } = options;
  if (!Array.isArray(nodes) || nodes.length === 0) {
    throw new InvalidOptionsError(`${path}.nodes`, 'must be a non-empty array of { host, port } or "host:port"');
  }
  const parsed = nodes.map((node, index) => parseNode(node, `${path}.nodes[${index}]`));
  if (natMap !== undefined && typeof natMap !== 'function') {
    if (natMap === null || typeof natMap !== 'object' || Array.isArray(natMap)) {
      throw new InvalidOptionsError(`${path}.natMap`, 'must be an object { "host:port": { host, port } } or a function');
    }
    for (const [from, to] of Object.entries(natMap)) {
      if (!/^.+:\d+$/.test(from)) throw new InvalidOptionsError(`${path}.natMap`, `key ${JSON.stringify(from)} is not "host:port"`);
      parseNode(to, `${path}.natMap[${JSON.stringify(from)}]`);
    }
  }
  if (redisOptions !== undefined && (redisOptions === null || typeof redisOptions !== 'object')) {
    throw new InvalidOptionsError(`${path}.redisOptions`, 'must be an object');
  }
  if (clusterOptions !== undefined && (clusterOptions === null || typeof clusterOptions !== 'object')) {
    throw new InvalidOptionsError(`${path}.clusterOptions`, 'must be an object');
  }
  if (shardedPubSub !== undefined && typeof shardedPubSub !== 'boolean') {
    throw new InvalidOptionsError(`${path}.shardedPubSub`, 'must be a boolean');
  }
  const timeout = readyTimeoutMs ?? 10_000;
  if (!Number.isInteger(timeout) || timeout < 100 || timeout > 600_000) {
    throw new InvalidOptionsError(`${path}.readyTimeoutMs`, 'must be an integer from 100 to 600000');
  }
  return {
    nodes: parsed,
    natMap,
    redisOptions: redisOptions ?? {},
    clusterOptions: (clusterOptions ?? {}) as ClusterOptions,
    shardedPubSub: shardedPubSub ?? false,
    readyTimeoutMs: timeout,
  };
}

/** `{ host, port }` or `'host:port'` (IPv6 as `'[::1]:7000'`). */
function parseNode(node: unknown, name: string): ClusterNodeAddress {
  if (typeof node === 'string') {
    const match = /^\[?([^[\]]+?)\]?:(\d+)$/.exec(node.trim());
    if (!match) throw new InvalidOptionsError(name, `${JSON.stringify(node)} is not "host:port"`);
    return parseNode({ host: match[1], port: Number(match[2]) }, name);
  }
  if (node === null || typeof node !== 'object') throw new InvalidOptionsError(name, 'must be { host, port } or "host:port"');
  const { host, port } = node as { host?: unknown; port?: unknown };
  if (typeof host !== 'string' || host.length === 0) throw new InvalidOptionsError(name, 'host must be a non-empty string');
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new InvalidOptionsError(name, 'port must be an integer from 1 to 65535');
  }
  return { host, port };
}
