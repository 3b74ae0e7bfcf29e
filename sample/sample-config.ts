import { ClusterDriver, createDriver } from '../lib/index.js';
import type { OcppClusterOptions, RedisAdapterOptions } from '../lib/index.js';
import { NatsTransport } from '../lib/nats/index.js';
import { loadChargerPasswords, passwordAuthenticator } from './charger-passwords.js';
import type { ControlApiOptions } from './control-token.guard.js';
import { InvalidEnvironmentError, MAX_TIMER_MS, integerFromEnv } from './environment.js';
import { frameLogToFile } from './frame-log-file.js';
import { tlsFromEnv } from './tls-config.js';

export interface SampleConfig {
  port: number;
  ocpp: OcppClusterOptions;
  control: ControlApiOptions;
}

const positiveMs = { min: 1, max: MAX_TIMER_MS };
const msOrZero = { min: 0, max: MAX_TIMER_MS };
const count = { min: 0, max: Number.MAX_SAFE_INTEGER };

/**
 * Reads the sample's environment (README, "Quick start"): PORT, OCPP_PATH, OCPP_NODE_ID, REDIS_URL,
 * REDIS_CLUSTER_NODES (`host:port,host:port,...`: a Redis Cluster; it takes precedence over
 * REDIS_URL), NATS_URL (`nats://host:port[,nats://...]`: the NATS JetStream transport instead of
 * Redis; not together with the Redis variables), OCPP_NATS_PREFIX, OCPP_NATS_REPLICAS, OCPP_REDIS_PREFIX, OCPP_REDIS_POOL_SIZE, OCPP_STREAM_MAX_LEN, OCPP_NODE_TTL_MS,
 * OCPP_TAKEOVER_INTERVAL_MS, OCPP_STALL_TOLERANCE_MS (Redis), OCPP_CALL_TIMEOUT_MS, OCPP_PING_INTERVAL_MS, OCPP_DRAIN_WINDOW_MS, OCPP_DRAIN_SETTLE_MS,
 * OCPP_LAG_DEGRADED, OCPP_LAG_DOWN, OCPP_PASSWORDS_FILE, OCPP_FRAME_LOG, OCPP_WIRE_VERSION (tests only), OCPP_TLS_PORT, OCPP_TLS_CERT, OCPP_TLS_KEY,
 * OCPP_TLS_CA, OCPP_TLS_ISSUERS, OCPP_TLS_OPERATOR, CONTROL_TOKEN. Numbers must be plain
 * decimal integers; a bad value throws InvalidEnvironmentError naming the variable.
 */
export function sampleConfigFromEnv(env: NodeJS.ProcessEnv = process.env): SampleConfig {
  const ocpp: OcppClusterOptions = {
    path: env.OCPP_PATH || '/ocpp',
    nodeId: env.OCPP_NODE_ID || undefined,
    redis: redisFromEnv(env),
    adapter: natsFromEnv(env),
    callTimeoutMs: integerFromEnv(env, 'OCPP_CALL_TIMEOUT_MS', positiveMs),
    pingIntervalMs: integerFromEnv(env, 'OCPP_PING_INTERVAL_MS', msOrZero),
    // Tests only: the cluster wire version this node speaks (README, "Wire version").
    wireVersion: integerFromEnv(env, 'OCPP_WIRE_VERSION', { min: 1, max: 1000 }),
  };
  const windowMs = integerFromEnv(env, 'OCPP_DRAIN_WINDOW_MS', msOrZero);
  const settleMs = integerFromEnv(env, 'OCPP_DRAIN_SETTLE_MS', msOrZero);
  if (windowMs !== undefined || settleMs !== undefined) ocpp.drain = { windowMs, settleMs };
  const lagDegraded = integerFromEnv(env, 'OCPP_LAG_DEGRADED', count);
  const lagDown = integerFromEnv(env, 'OCPP_LAG_DOWN', count);
  if (lagDegraded !== undefined || lagDown !== undefined) ocpp.health = { lagDegraded, lagDown };
  if (env.OCPP_FRAME_LOG) ocpp.frameLog = frameLogToFile(env.OCPP_FRAME_LOG);
  const tls = tlsFromEnv(env);
  if (tls) Object.assign(ocpp, tls);
  else if (env.OCPP_PASSWORDS_FILE) ocpp.authenticate = passwordAuthenticator(loadChargerPasswords(env.OCPP_PASSWORDS_FILE));
  return {
    port: integerFromEnv(env, 'PORT', { min: 0, max: 65_535 }) ?? 3000,
    ocpp,
    control: { token: controlTokenFromEnv(env) },
  };
}

/** The NATS transport when NATS_URL is set; its streams and buckets are named from OCPP_NATS_PREFIX, replicated OCPP_NATS_REPLICAS times. */
function natsFromEnv(env: NodeJS.ProcessEnv): NatsTransport | undefined {
  const servers = env.NATS_URL?.split(',').map((server) => server.trim()).filter((server) => server.length > 0);
  if (!servers || servers.length === 0) return undefined;
  if (env.REDIS_URL || env.REDIS_CLUSTER_NODES) {
    throw new InvalidEnvironmentError('NATS_URL', 'is set together with REDIS_URL or REDIS_CLUSTER_NODES: the cluster runs over one transport');
  }
  return new NatsTransport({
    servers,
    connectionOptions: env.OCPP_NODE_ID ? { name: `ocpp-cluster:${env.OCPP_NODE_ID}` } : undefined,
    prefix: env.OCPP_NATS_PREFIX || undefined,
    replicas: integerFromEnv(env, 'OCPP_NATS_REPLICAS', { min: 1, max: 5 }),
    inboxMaxMessages: integerFromEnv(env, 'OCPP_STREAM_MAX_LEN', { min: 10, max: 10_000_000 }),
    nodeTtlMs: integerFromEnv(env, 'OCPP_NODE_TTL_MS', positiveMs),
    takeoverIntervalMs: integerFromEnv(env, 'OCPP_TAKEOVER_INTERVAL_MS', positiveMs),
    stallToleranceMs: integerFromEnv(env, 'OCPP_STALL_TOLERANCE_MS', msOrZero),
  });
}

function redisFromEnv(env: NodeJS.ProcessEnv): RedisAdapterOptions | undefined {
  const clusterNodes = env.REDIS_CLUSTER_NODES?.split(',').map((node) => node.trim()).filter((node) => node.length > 0);
  const url = env.REDIS_URL;
  if (!(clusterNodes && clusterNodes.length > 0) && !url) return undefined;
  const poolSize = integerFromEnv(env, 'OCPP_REDIS_POOL_SIZE', { min: 1, max: 64 }) ?? 1;
  // Names the node's connections in CLIENT LIST, so an operator sees who is who.
  const redisOptions = env.OCPP_NODE_ID ? { connectionName: `ocpp-cluster:${env.OCPP_NODE_ID}` } : undefined;
  const common = {
    poolSize,
    redisOptions,
    prefix: env.OCPP_REDIS_PREFIX || undefined,
    streamMaxLen: integerFromEnv(env, 'OCPP_STREAM_MAX_LEN', { min: 10, max: 10_000_000 }), // the module's limits
    nodeTtlMs: integerFromEnv(env, 'OCPP_NODE_TTL_MS', positiveMs),
    takeoverIntervalMs: integerFromEnv(env, 'OCPP_TAKEOVER_INTERVAL_MS', positiveMs),
    stallToleranceMs: integerFromEnv(env, 'OCPP_STALL_TOLERANCE_MS', msOrZero),
  };
  if (clusterNodes && clusterNodes.length > 0) {
    return {
      ...common,
      cluster: { nodes: clusterNodes },
      driverFactory: poolSize > 1 ? () => new ClusterDriver({ nodes: clusterNodes, redisOptions }) : undefined,
    };
  }
  return {
    ...common,
    url,
    // Extra writers for a pool: messages to one node always take the same one (ordering).
    driverFactory: poolSize > 1 ? () => createDriver({ url: url! }) : undefined,
  };
}

/** Unset: the control API is open (main.ts warns). Set but empty is a mistake, not "open". */
function controlTokenFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  const token = env.CONTROL_TOKEN;
  if (token === undefined) return undefined;
  if (token.trim() === '') throw new InvalidEnvironmentError('CONTROL_TOKEN', 'is set but empty: unset it, or give it a secret');
  return token;
}
