import type { Redis } from 'ioredis';
import { createDriver, reconnectDelayMs } from '../../lib/redis/redis-driver.js';
import { RedisKeys } from '../../lib/redis/redis-keys.js';
import { command, connectCharger, redisTestBed } from '../support/redis-fixtures.js';
import { sleep, waitFor } from '../support/wait.js';
import { ALL_NODES } from '../../lib/cluster/address.js';
import { laneOf } from '../support/addresses.js';

describe('RedisAdapter when its connections are cut (CLIENT KILL)', () => {
  const bed = redisTestBed((nodeId) => ({ redisOptions: { connectionName: `test-${nodeId}` } }));
  const node = bed.node;
  const keys = new RedisKeys();

  /** Kills the server side of every connection whose name starts with `prefix`. Returns how many. */
  async function killConnections(prefix: string): Promise<number> {
    const list = String(await bed.redis.call('CLIENT', 'LIST'));
    const ids = list
      .split('\n')
      .map((line) => Object.fromEntries(line.trim().split(' ').map((pair) => pair.split('=') as [string, string])))
      .filter((client) => client.name?.startsWith(prefix))
      .map((client) => client.id);
    for (const id of ids) await bed.redis.call('CLIENT', 'KILL', 'ID', id);
    return ids.length;
  }

  it('recovers from losing every connection: inbox, broadcasts, liveness and presence keep working', async () => {
    const a = await node('A');
    const b = await node('B');
    await connectCharger(a, 'CP1');
    expect(await killConnections('test-A:')).toBe(3);

    await waitFor('A reconnected and healthy', async () => (await a.adapter.metrics()).reconnects >= 1 && a.adapter.isHealthy());
    await waitFor('A recovered', async () => (await a.adapter.metrics()).recoveries >= 1);
    await b.adapter.publish(laneOf('A', command('B', 'CP1')), command('B', 'CP1'));
    await waitFor('A reads its inbox', () => a.inbox.ofKind('command').length === 1);
    await b.adapter.publish(ALL_NODES, { kind: 'nodeLeft', nodeId: 'nobody' });
    await waitFor('A hears broadcasts', () => a.broadcasts.messages.length === 1);
    await a.adapter.publish(laneOf('B', command('A', 'CP2')), command('A', 'CP2'));
    await waitFor('A can send', () => b.inbox.ofKind('command').length === 1);
    expect((await b.adapter.getPresence('CP1'))?.nodeId).toBe('A');
    expect(await bed.redis.exists(keys.alive('A'))).toBe(1);
    expect(b.nodeLoss.takeovers).toBe(0);
  });

  it('recovers when only the blocking reader is cut', async () => {
    const a = await node('A');
    const b = await node('B');
    expect(await killConnections('test-A:blocking')).toBe(1);
    await b.adapter.publish(laneOf('A', command('B', 'CP1')), command('B', 'CP1'));
    await waitFor('A reads its inbox', () => a.inbox.ofKind('command').length === 1);
    await waitFor('A healthy', () => a.adapter.isHealthy());
  });

  it('reports unhealthy while Redis is unreachable and healthy again after', async () => {
    const a = await node('A');
    await bed.server.kill9();
    try {
      await waitFor('A unhealthy', () => !a.adapter.isHealthy());
      await expect(a.adapter.publish(laneOf('A', command('A', 'CP1')), command('A', 'CP1'))).rejects.toMatchObject({ code: 'OCPP_CLUSTER_UNAVAILABLE' });
    } finally {
      await bed.server.start();
    }
    await waitFor('A healthy', () => a.adapter.isHealthy());
    await waitFor('A recovered', async () => (await a.adapter.metrics()).recoveries >= 1);
    await a.adapter.publish(laneOf('A', command('A', 'CP1')), command('A', 'CP1'));
    await waitFor('A reads its inbox', () => a.inbox.ofKind('command').length >= 1);
    await sleep(300);
    expect(a.inbox.ofKind('command')).toHaveLength(1); // re-reading pending entries after recovery runs nothing twice
  });
});

describe('reconnect backoff of the connections the driver builds', () => {
  it('tries again soon after a drop and never waits more than about half a second between attempts', () => {
    const delays = Array.from({ length: 50 }, (_, attempt) => reconnectDelayMs(attempt + 1));
    expect(delays[0]).toBeLessThan(50);
    expect(Math.max(...delays)).toBeLessThan(525);
  });

  it('keeps a retryStrategy the user gave', async () => {
    const userStrategy = (): number => 1234;
    const driver = createDriver({ url: 'redis://127.0.0.1:1', redisOptions: { lazyConnect: true, retryStrategy: userStrategy } });
    const built = createDriver({ url: 'redis://127.0.0.1:1', redisOptions: { lazyConnect: true } });
    try {
      expect((driver.writer as Redis).options.retryStrategy).toBe(userStrategy);
      expect((built.writer as Redis).options.retryStrategy).toBe(reconnectDelayMs);
    } finally {
      driver.destroy();
      built.destroy();
    }
  });
});
