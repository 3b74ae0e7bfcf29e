import { Redis } from 'ioredis';
import { InvalidOptionsError } from '../../lib/protocol/errors.js';
import { RedisAdapter, type RedisAdapterOptions } from '../../lib/redis/redis-adapter.js';
import { RedisConnectionPool } from '../../lib/redis/redis-connection-pool.js';
import { createDriver } from '../../lib/redis/redis-driver.js';
import { command, MemoryLogger, startNode, type TestNode } from '../support/redis-fixtures.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';
import { laneOf } from '../support/addresses.js';

describe('writer pool', () => {
  let server: RedisServer;
  let redis: Redis;
  const nodes: TestNode[] = [];

  beforeAll(async () => {
    server = await startRedisServer();
    redis = new Redis(server.port);
    redis.on('error', () => undefined);
  });

  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((node) => node.adapter.disconnect()));
    await redis.flushall();
  });

  afterAll(async () => {
    redis?.disconnect();
    await stopAllRedisServers();
  });

  it('keeps per-destination order with poolSize 4 while spreading destinations over members', async () => {
    const logger = new MemoryLogger();
    const sender = await startNode(server.url, 'S', {
      poolSize: 4,
      redisOptions: { connectionName: 'pooled' },
      driverFactory: (index) => createDriver({ url: server.url, redisOptions: { connectionName: `pooled-${index}` }, logger }),
    });
    nodes.push(sender);
    const receivers = await Promise.all(['B', 'C', 'D', 'E'].map((id) => startNode(server.url, id)));
    nodes.push(...receivers);

    const sent = new Map<string, string[]>(receivers.map((r) => [r.nodeId, []]));
    const publishes: Promise<void>[] = [];
    // Destinations in a scrambled order, so no pool scheme maps them onto members by accident.
    const order = Array.from({ length: 400 }, (_, i) => receivers[(i * 7 + ((i * i) % 5)) % receivers.length].nodeId);
    for (let i = 0; i < 400; i++) {
      const target = order[i];
      const message = command('S', `CP${i}`);
      sent.get(target)!.push(message.id);
      publishes.push(sender.adapter.publish(laneOf(target, message), message)); // not awaited one by one
    }
    await Promise.all(publishes);
    for (const receiver of receivers) {
      const expected = sent.get(receiver.nodeId)!.length;
      await waitFor(`${receiver.nodeId} got ${expected}`, () => receiver.inbox.messages.length === expected);
      expect(receiver.inbox.messages.map((m) => (m as { id: string }).id)).toEqual(sent.get(receiver.nodeId));
    }
    const writers = String(await redis.call('CLIENT', 'LIST'))
      .split('\n')
      .filter((line) => /name=pooled(-\d)?:writer /.test(line));
    expect(writers).toHaveLength(4);
    expect((await sender.adapter.metrics()).poolSize).toBe(4);
  });

  it('picks the same member for the same destination, and different ones across destinations', () => {
    const drivers = Array.from({ length: 4 }, () => createDriver({ url: server.url, logger: new MemoryLogger() }));
    const pool = new RedisConnectionPool(drivers[0], { poolSize: 4, driverFactory: (index) => drivers[index] });
    try {
      const key = 'ocpp-cluster:{n:B}:stream';
      expect(new Set(Array.from({ length: 10 }, () => pool.indexOf(key))).size).toBe(1);
      const spread = new Set(Array.from({ length: 50 }, (_, i) => pool.indexOf(`ocpp-cluster:{n:node-${i}}:stream`)));
      expect(spread.size).toBe(4);
    } finally {
      for (const driver of drivers) driver.destroy();
    }
  });

  it('closes the members it made and never a user-built client', async () => {
    const userClient = new Redis(server.port);
    userClient.on('error', () => undefined);
    await userClient.ping();
    const adapter = new RedisAdapter({
      url: server.url,
      poolSize: 2,
      driverFactory: () => userClient,
      logger: new MemoryLogger(),
    });
    await adapter.disconnect();
    expect(userClient.status).toBe('ready');
    expect(await userClient.ping()).toBe('PONG');
    userClient.disconnect();
  });
});

describe('RedisAdapter options', () => {
  const base: RedisAdapterOptions = { url: 'redis://127.0.0.1:1' };
  it.each<[string, RedisAdapterOptions]>([
    ['poolSize', { ...base, poolSize: 0 }],
    ['poolSize', { ...base, poolSize: 1.5 }],
    ['driverFactory', { ...base, poolSize: 2 }],
    ['streamMaxLen', { ...base, streamMaxLen: -1 }],
    ['streamTtlSeconds', { ...base, streamTtlSeconds: 0 }],
    ['presenceTtlSeconds', { ...base, presenceTtlSeconds: '300' as unknown as number }],
    ['nodeTtlMs', { ...base, nodeTtlMs: 10 }],
    ['prefix', { ...base, prefix: 'a{b}' }],
    ['url', { url: 'http://localhost' }],
    ['url', {}],
    ['url', { url: 'redis://x', pubClient: {} as Redis }],
    ['pubClient', { pubClient: {} as Redis }],
  ])('names %s when it is wrong', (option, options) => {
    let caught: unknown;
    try {
      new RedisAdapter({ logger: new MemoryLogger(), ...options });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidOptionsError);
    expect((caught as InvalidOptionsError).option).toBe(option);
  });
});
