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
export async function pingWithin(client: RedisClient, timeoutMs: number): Promise<ConnectionProbeResult> {
  if (client.status !== 'ready') return { ok: false, rttMs: null, error: `connection ${client.status}` };
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.ping(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no PONG within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { ok: true, rttMs: Math.round((performance.now() - started) * 100) / 100 };
  } catch (error) {
    return { ok: false, rttMs: null, error: (error as Error)?.message ?? String(error) };
  } finally {
    clearTimeout(timer);
  }
}
