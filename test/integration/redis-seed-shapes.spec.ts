import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import type { ClusterMessage } from '../../lib/cluster/envelope.js';
import { ClusterDriver, createDriver, InvalidOptionsError, RedisAdapter } from '../../lib/index.js';
import { command, FakeLocalRegistry, MemoryLogger } from '../support/redis-fixtures.js';
import { startRedisCluster, startRedisServer, stopAllRedisServers, type RedisClusterHandle, type RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';
import { laneOf } from '../support/addresses.js';

/** The shapes SEED.md prints, as users copy them, on real Redis and a real Redis Cluster. */
describe('the seed\'s Redis shapes work as printed', () => {
  let server: RedisServer;
  let cluster: RedisClusterHandle;
  const userClients: Redis[] = [];
  const adapters: RedisAdapter[] = [];
  const url = () => server.url;
  const client = () => {
    const made = new Redis(url());
    userClients.push(made);
    return made;
  };

  beforeAll(async () => {
    server = await startRedisServer();
    cluster = await startRedisCluster(3);
  }, 60_000);
  afterEach(async () => {
    await Promise.all(adapters.splice(0).map((adapter) => adapter.disconnect()));
  });
  afterAll(async () => {
    for (const made of userClients) made.disconnect();
    await stopAllRedisServers();
  });

  /** Joins as `nodeId`, then proves a command published to its own inbox comes back. */
  async function roundTrip(adapter: RedisAdapter, nodeId: string, held?: Promise<void>): Promise<ClusterMessage[]> {
    adapters.push(adapter);
    const received: ClusterMessage[] = [];
    await adapter.connect(nodeId, new FakeLocalRegistry(nodeId));
    await adapter.subscribe('node', async (message) => {
      received.push(message);
      await held;
    });
    await adapter.publish(laneOf(nodeId, command(nodeId, `${nodeId}-CP`)), command(nodeId, `${nodeId}-CP`));
    await waitFor(`${nodeId} to receive its command`, () => received.length === 1);
    return received;
  }

  it('pool members from createDriver(new Redis(url), new Redis(url)), a writer and a subscriber', async () => {
    const adapter = new RedisAdapter({
      pubClient: client(),
      subClient: client(),
      poolSize: 4,
      driverFactory: () => createDriver(client(), client()),
      logger: new MemoryLogger(),
    });
    expect(adapter.connectionPool.size).toBe(4);
    await roundTrip(adapter, 'seed-pool');
  });

  it('the Redis Cluster form: placeholder clients and driverFactory: () => clusterDriver', async () => {
    const clusterDriver = new ClusterDriver({ nodes: cluster.nodes });
    const adapter = new RedisAdapter({
      pubClient: {} as any, // Not used when driverFactory is provided
      subClient: {} as any,
      driverFactory: () => clusterDriver,
      logger: new MemoryLogger(),
    });
    expect(adapter.connectionPool.primary).toBe(clusterDriver);
    expect(adapter.connectionPool.primary.isCluster).toBe(true);
    await roundTrip(adapter, 'seed-cluster');
  });

  it('(await adapter.metrics()).redisConsumerLag.pendingMessages on the adapter itself', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const adapter = new RedisAdapter({ url: url(), logger: new MemoryLogger() });
    await roundTrip(adapter, 'seed-metrics', held);
    const telemetry = await adapter.metrics();
    expect(telemetry.redisConsumerLag.pendingMessages).toBe(1);
    expect(telemetry.redisConsumerLag).toEqual({ pendingMessages: telemetry.pendingMessages, lag: telemetry.consumerLag });
    // Every enumerable value stays a number (Prometheus, JSON).
    expect(Object.values(telemetry).every((value) => typeof value === 'number')).toBe(true);
    release();
    await waitFor('the entry to be acknowledged', async () => (await adapter.metrics()).redisConsumerLag.pendingMessages === 0);
  });

  it('names the form to use when a shape is refused', () => {
    expect(() => new RedisAdapter({ pubClient: {} as any, subClient: {} as any })).toThrow(InvalidOptionsError);
    expect(() => new RedisAdapter({ pubClient: {} as any, subClient: {} as any })).toThrow(/driverFactory: \(\) => new ClusterDriver/);
    expect(() => createDriver({} as any)).toThrow(/createDriver\(new Redis\(url\), new Redis\(url\)\)/);
  });
});
