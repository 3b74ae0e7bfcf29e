import { Cluster } from 'ioredis';
import { ClusterUnavailableError, OcppClusterError } from '../protocol/errors.js';
import type { RedisClient } from './redis-driver.js';

/** ioredis's wording → ours; an operator reads what happened, not the client's internals. */
const CAUSES: ReadonlyArray<[RegExp, string]> = [
  [/ECONNREFUSED/, 'connection refused'],
  [/ENOTFOUND|EAI_AGAIN/, 'host not found'],
  [/ETIMEDOUT|timed out|timeout/i, 'no answer in time'],
  [/ECONNRESET|EPIPE/, 'connection reset'],
  [/max retries per request/i, 'no answer after repeated reconnect attempts'],
  [/Connection is closed|Stream isn't writeable|enableOfflineQueue/, 'not connected'],
  [/Failed to refresh slots cache|None of startup nodes is available|ClusterAllFailed/i, 'no cluster node answers'],
];

/** Where the writer points: `Redis at host:port`, or `Redis Cluster at host:port,...`. */
export function redisLocation(client: RedisClient): string {
  if (client instanceof Cluster) {
    const seeds = (client as unknown as { startupNodes?: Array<{ host?: string; port?: number } | string | number> }).startupNodes ?? [];
    const addresses = seeds.map((seed) => (typeof seed === 'object' ? `${seed.host ?? '127.0.0.1'}:${seed.port ?? 6379}` : String(seed)));
    return `Redis Cluster at ${addresses.join(',') || 'its startup nodes'}`;
  }
  const { host, port, path } = client.options;
  return `Redis at ${path ?? `${host ?? '127.0.0.1'}:${port ?? 6379}`}`;
}

/**
 * Our typed errors pass through; a failure from Redis becomes ClusterUnavailableError in our
 * words: "Redis at 127.0.0.1:6379 unreachable: connection refused". A reply error (Redis answered
 * but refused, e.g. OOM or READONLY) keeps Redis's own text, which names the cause.
 */
export function redisUnavailable(error: unknown, location: string): Error {
  if (error instanceof OcppClusterError) return error;
  const text = (error as Error)?.message ?? String(error);
  if ((error as Error)?.name === 'ReplyError') return new ClusterUnavailableError(`${location} refused the command: ${text}`);
  const cause = CAUSES.find(([pattern]) => pattern.test(text))?.[1];
  return new ClusterUnavailableError(`${location} unreachable: ${cause ?? text}`);
}
