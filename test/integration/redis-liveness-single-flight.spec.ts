import { Redis } from 'ioredis';
import { NodeLiveness } from '../../lib/redis/node-liveness.js';
import { RedisConnectionPool } from '../../lib/redis/redis-connection-pool.js';
import { createDriver } from '../../lib/redis/redis-driver.js';
import { RedisKeys } from '../../lib/redis/redis-keys.js';
import { commandCalls, MemoryLogger, redisTestBed } from '../support/redis-fixtures.js';

describe('NodeLiveness.isAlive: one EXISTS for concurrent callers (real Redis)', () => {
  const keys = new RedisKeys();
  const bed = redisTestBed();
  const clients: Redis[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) client.disconnect();
    await bed.redis.call('ACL', 'DELUSER', 'checker');
  });

  /** A liveness of node A; with `aliveCacheMs` 0 an answer is never reused (every call finds it expired). */
  function livenessOver(client: Redis, aliveCacheMs: number): NodeLiveness {
    client.on('error', () => undefined);
    clients.push(client);
    return new NodeLiveness({
      keys,
      pool: new RedisConnectionPool(createDriver({ pubClient: client, logger: new MemoryLogger() })),
      nodeId: 'A',
      ttlMs: 1500,
      streamTtlMs: 60_000,
      ownedTtlMs: 60_000,
      inboxCap: 10_000,
      logger: new MemoryLogger(),
      onLeaseEvent: () => undefined,
      aliveCacheMs,
    });
  }

  async function existsCalls(): Promise<number> {
    return commandCalls(await bed.redis.info('commandstats'), 'exists');
  }

  it('answers concurrent callers for one node with one EXISTS, and asks again once it is answered', async () => {
    const liveness = livenessOver(new Redis(bed.server.port), 0);
    await bed.redis.set(keys.alive('B'), 'token');
    const before = await existsCalls();

    const burst = await Promise.all(Array.from({ length: 50 }, () => liveness.isAlive('B')));
    expect(burst.every((alive) => alive)).toBe(true);
    expect((await existsCalls()) - before).toBe(1);

    // Another node gets a query of its own; the answered query is not reused for a new burst.
    await bed.redis.del(keys.alive('B'));
    const [b, c] = await Promise.all([
      Promise.all(Array.from({ length: 20 }, () => liveness.isAlive('B'))),
      Promise.all(Array.from({ length: 20 }, () => liveness.isAlive('C'))),
    ]);
    expect([...b, ...c].some((alive) => alive)).toBe(false);
    expect((await existsCalls()) - before).toBe(3);
  });

  it('rejects every waiter when the EXISTS fails, caches nothing, and the next caller asks again', async () => {
    // A user that may do anything but EXISTS: a real Redis error, on demand.
    await bed.redis.call('ACL', 'SETUSER', 'checker', 'on', 'nopass', '~*', '&*', '+@all', '-exists');
    // A long cache: had the failure cached anything, the next caller would not ask Redis again.
    const liveness = livenessOver(new Redis(bed.server.port, { username: 'checker', password: 'unused' }), 60_000);
    await bed.redis.set(keys.alive('B'), 'token');

    const waiters = await Promise.allSettled(Array.from({ length: 20 }, () => liveness.isAlive('B')));
    expect(waiters.every((waiter) => waiter.status === 'rejected')).toBe(true);
    const reasons = new Set(waiters.map((waiter) => (waiter as PromiseRejectedResult).reason));
    expect(reasons.size).toBe(1);
    expect(String([...reasons][0])).toMatch(/NOPERM/);

    await bed.redis.call('ACL', 'SETUSER', 'checker', '+exists');
    const before = await existsCalls();
    const after = await Promise.all(Array.from({ length: 20 }, () => liveness.isAlive('B')));
    expect(after.every((alive) => alive)).toBe(true);
    expect((await existsCalls()) - before).toBe(1);
    expect(await liveness.isAlive('B')).toBe(true);
    expect((await existsCalls()) - before).toBe(1); // answered from the cache now
  });
});
