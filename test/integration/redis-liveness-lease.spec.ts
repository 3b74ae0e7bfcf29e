import { RedisKeys } from '../../lib/redis/redis-keys.js';
import { redisTestBed } from '../support/redis-fixtures.js';
import { sleep, waitFor } from '../support/wait.js';

/**
 * Fencing needs a heartbeat that never dies: whatever Redis does (slow answers, pauses, a
 * restart), the node must keep trying to prove its lease and get it back as soon as it can.
 */
describe('RedisAdapter lease (fencing) over a slow Redis', () => {
  const bed = redisTestBed();
  const keys = new RedisKeys();
  const TTL_MS = 1000;

  it('a heartbeat answered later than its lease lasts (writes paused) lapses the lease, then takes it back and keeps it', async () => {
    const a = await bed.node('A', { nodeTtlMs: TTL_MS });
    expect(a.adapter.holdsLease()).toBe(true);
    // Writes paused for most of a TTL: the heartbeat in flight is answered after its lease ran out.
    await bed.redis.call('CLIENT', 'PAUSE', String(Math.round(TTL_MS * 0.9)), 'WRITE');
    await waitFor('the lease to be suspended', () => !a.adapter.holdsLease(), { timeoutMs: 5_000 });
    await waitFor('the lease to be taken back', () => a.adapter.holdsLease(), { timeoutMs: 10_000 });
    // ...and kept: several TTLs later the heartbeat still runs and the key is still ours.
    await sleep(TTL_MS * 4);
    expect(a.adapter.holdsLease()).toBe(true);
    expect(await bed.redis.pttl(keys.alive('A'))).toBeGreaterThan(0);
    expect(a.adapter.isHealthy()).toBe(true);
  });

  it('keeps its lease through a Redis restart that lost every key', async () => {
    const a = await bed.node('A', { nodeTtlMs: TTL_MS });
    await bed.server.restart();
    await waitFor('the key to be back', async () => (await bed.redis.exists(keys.alive('A')).catch(() => 0)) === 1, { timeoutMs: 10_000 });
    await sleep(TTL_MS * 4);
    expect(a.adapter.holdsLease()).toBe(true);
    expect(await bed.redis.pttl(keys.alive('A'))).toBeGreaterThan(0);
  });
});
