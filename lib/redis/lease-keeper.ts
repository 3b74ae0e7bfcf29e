import type { Cluster, Redis } from 'ioredis';
import { LeaseKeeperThread, plainData } from '../cluster/lease-keeper-thread.js';
import type { ClusterLogger } from '../cluster/logger.js';
import type { RedisClient } from './redis-driver.js';

/** How the keeper's thread connects: a copy of the writer's own settings (functions cannot cross threads). */
export type KeeperConnection =
  | { kind: 'standalone'; options: Record<string, unknown> }
  | { kind: 'cluster'; nodes: unknown[]; options: Record<string, unknown> };

export interface LeaseKeeperOptions {
  /** The connection whose settings the keeper copies (the node's writer for its liveness key). */
  client: RedisClient;
  /** The heartbeat script (LIVENESS_REFRESH) and its keys; the token goes first in ARGV, then `args`. */
  script: string;
  keys: readonly string[];
  args: readonly (string | number)[];
  intervalMs: number;
  ttlMs: number;
  marginMs: number;
  /** How long the main thread may go without turning before the keeper lets the key lapse. */
  toleranceMs: number;
  logger: ClusterLogger;
}

/**
 * The Redis lease keeper (see LeaseKeeperThread): its thread runs the node's own heartbeat
 * script (LIVENESS_REFRESH) under the node's token on a connection of its own, every heartbeat
 * interval, beside the event loop's; the script only renews a key that still holds the token.
 */
export function startLeaseKeeper(options: LeaseKeeperOptions): LeaseKeeperThread | null {
  const { client, script, keys, args, logger, ...timing } = options;
  return LeaseKeeperThread.start({
    ...timing,
    script: new URL('./lease-keeper.worker.mjs', import.meta.url),
    data: () => ({ connection: keeperConnection(client), script, keys, args }),
    logger,
  });
}

/** The writer's connection settings as plain data (functions, such as a retry strategy, are left to ioredis's defaults). */
export function keeperConnection(client: RedisClient): KeeperConnection {
  // ioredis's own flag, not instanceof: the user's clients may come from another copy of ioredis.
  if ((client as { isCluster?: boolean }).isCluster === true) {
    const nodes = plainData((client as unknown as { startupNodes: unknown[] }).startupNodes) as unknown[];
    const options = plainData((client as Cluster).options) as Record<string, unknown>;
    const redisOptions = (options.redisOptions ?? {}) as Record<string, unknown>;
    return { kind: 'cluster', nodes, options: { ...options, lazyConnect: false, redisOptions: keeperNamed(redisOptions) } };
  }
  return { kind: 'standalone', options: keeperNamed(plainData((client as Redis).options) as Record<string, unknown>) };
}

/** An operator reading CLIENT LIST tells the keeper's connection from the node's others. */
function keeperNamed(options: Record<string, unknown>): Record<string, unknown> {
  return typeof options.connectionName === 'string' ? { ...options, connectionName: `${options.connectionName}:lease-keeper` } : options;
}
