import type { RedisClient } from './redis-driver.js';

export interface ConnectionProbeResult {
  ok: boolean;
  rttMs: number | null;
  error?: string;
}

/**
 * PINGs one connection with a bound. Never throws, and never waits in the offline queue:
 * a connection that is not ready is reported down at once.
 */
export function pingWithin(client: RedisClient, timeoutMs: number): Promise<ConnectionProbeResult> {
  return answeredWithin(client, () => client.ping(), `no PONG within ${timeoutMs} ms`, timeoutMs);
}

/**
 * Writes `key` (expiring soon after) with the same bounds: a server that answers PING but
 * refuses writes (maxmemory with noeviction, a read-only replica) is reported down with its error.
 */
export function writeWithin(client: RedisClient, key: string, timeoutMs: number): Promise<ConnectionProbeResult> {
  return answeredWithin(client, () => client.set(key, '1', 'PX', PROBE_KEY_TTL_MS), `no write answered within ${timeoutMs} ms`, timeoutMs);
}

/** How long a probe key lives: it only proves that a write went through. */
const PROBE_KEY_TTL_MS = 10_000;

async function answeredWithin(
  client: RedisClient,
  command: () => Promise<unknown>,
  timeoutMessage: string,
  timeoutMs: number,
): Promise<ConnectionProbeResult> {
  if (client.status !== 'ready') return { ok: false, rttMs: null, error: `connection ${client.status}` };
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      command(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(timeoutMessage)), timeoutMs);
      }),
    ]);
    return { ok: true, rttMs: Math.round((performance.now() - started) * 100) / 100 };
  } catch (error) {
    return { ok: false, rttMs: null, error: (error as Error)?.message ?? String(error) };
  } finally {
    clearTimeout(timer);
  }
}
