import { ClusterDriver, createDriver } from '../lib/index.js';
import type { OcppClusterOptions } from '../lib/index.js';

export interface SampleConfig {
  port: number;
  ocpp: OcppClusterOptions;
}

/**
 * Reads the sample's environment: PORT, OCPP_PATH, OCPP_NODE_ID, REDIS_URL, REDIS_CLUSTER_NODES
 * (`host:port,host:port,...`: a Redis Cluster; it takes precedence over REDIS_URL), OCPP_REDIS_POOL_SIZE,
 * OCPP_NODE_TTL_MS, OCPP_TAKEOVER_INTERVAL_MS, OCPP_CALL_TIMEOUT_MS, OCPP_DRAIN_WINDOW_MS, OCPP_DRAIN_SETTLE_MS, OCPP_LAG_DEGRADED,
 * OCPP_LAG_DOWN.
 */
export function sampleConfigFromEnv(env: NodeJS.ProcessEnv = process.env): SampleConfig {
  const port = env.PORT === undefined ? 3000 : Number(env.PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number, got ${env.PORT}`);
  const ocpp: OcppClusterOptions = {
    path: env.OCPP_PATH || '/ocpp',
    nodeId: env.OCPP_NODE_ID || undefined,
  };
  const clusterNodes = env.REDIS_CLUSTER_NODES?.split(',').map((node) => node.trim()).filter((node) => node.length > 0);
  if (clusterNodes && clusterNodes.length > 0) {
    const poolSize = env.OCPP_REDIS_POOL_SIZE ? Number(env.OCPP_REDIS_POOL_SIZE) : 1;
    const redisOptions = env.OCPP_NODE_ID ? { connectionName: `ocpp-cluster:${env.OCPP_NODE_ID}` } : undefined;
    ocpp.redis = {
      cluster: { nodes: clusterNodes },
      poolSize,
      driverFactory: poolSize > 1 ? () => new ClusterDriver({ nodes: clusterNodes, redisOptions }) : undefined,
      nodeTtlMs: env.OCPP_NODE_TTL_MS ? Number(env.OCPP_NODE_TTL_MS) : undefined,
      takeoverIntervalMs: env.OCPP_TAKEOVER_INTERVAL_MS ? Number(env.OCPP_TAKEOVER_INTERVAL_MS) : undefined,
      redisOptions,
    };
  } else if (env.REDIS_URL) {
    const url = env.REDIS_URL;
    const poolSize = env.OCPP_REDIS_POOL_SIZE ? Number(env.OCPP_REDIS_POOL_SIZE) : 1;
    ocpp.redis = {
      url,
      poolSize,
      // Extra writers for a pool: messages to one node always take the same one (ordering).
      driverFactory: poolSize > 1 ? () => createDriver({ url }) : undefined,
      nodeTtlMs: env.OCPP_NODE_TTL_MS ? Number(env.OCPP_NODE_TTL_MS) : undefined,
      takeoverIntervalMs: env.OCPP_TAKEOVER_INTERVAL_MS ? Number(env.OCPP_TAKEOVER_INTERVAL_MS) : undefined,
      // Names the node's connections in CLIENT LIST, so an operator sees who is who.
      redisOptions: env.OCPP_NODE_ID ? { connectionName: `ocpp-cluster:${env.OCPP_NODE_ID}` } : undefined,
    };
  }
  if (env.OCPP_CALL_TIMEOUT_MS) ocpp.callTimeoutMs = Number(env.OCPP_CALL_TIMEOUT_MS);
  if (env.OCPP_DRAIN_WINDOW_MS || env.OCPP_DRAIN_SETTLE_MS) {
    ocpp.drain = {
      windowMs: env.OCPP_DRAIN_WINDOW_MS ? Number(env.OCPP_DRAIN_WINDOW_MS) : undefined,
      settleMs: env.OCPP_DRAIN_SETTLE_MS ? Number(env.OCPP_DRAIN_SETTLE_MS) : undefined,
    };
  }
  if (env.OCPP_LAG_DEGRADED || env.OCPP_LAG_DOWN) {
    ocpp.health = {
      lagDegraded: env.OCPP_LAG_DEGRADED ? Number(env.OCPP_LAG_DEGRADED) : undefined,
      lagDown: env.OCPP_LAG_DOWN ? Number(env.OCPP_LAG_DOWN) : undefined,
    };
  }
  return { port, ocpp };
}
