import type { OcppClusterOptions } from '../lib/index.js';

export interface SampleConfig {
  port: number;
  ocpp: OcppClusterOptions;
}

/** Reads the sample's environment: PORT, OCPP_PATH, OCPP_NODE_ID, REDIS_URL. */
export function sampleConfigFromEnv(env: NodeJS.ProcessEnv = process.env): SampleConfig {
  const port = env.PORT === undefined ? 3000 : Number(env.PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number, got ${env.PORT}`);
  const ocpp: OcppClusterOptions = {
    path: env.OCPP_PATH || '/ocpp',
    nodeId: env.OCPP_NODE_ID || undefined,
  };
  if (env.REDIS_URL) ocpp.redis = { url: env.REDIS_URL };
  if (env.OCPP_CALL_TIMEOUT_MS) ocpp.callTimeoutMs = Number(env.OCPP_CALL_TIMEOUT_MS);
  return { port, ocpp };
}
