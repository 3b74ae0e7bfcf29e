import { performance } from 'node:perf_hooks';
import { Cluster, Redis } from 'ioredis';
import { NodeLiveness, type LeaseEvent } from '../../lib/redis/node-liveness.js';
import { RedisConnectionPool } from '../../lib/redis/redis-connection-pool.js';
import { createDriver, type RedisClient } from '../../lib/redis/redis-driver.js';
import { RedisKeys } from '../../lib/redis/redis-keys.js';
import { MemoryLogger } from '../support/redis-fixtures.js';
import { startRedisCluster, startRedisServer, stopAllRedisServers, type RedisClusterHandle, type RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

/**
 * The Redis lease keeper thread (lib/redis/lease-keeper.ts, lib/cluster/lease-keeper-thread.ts) on real Redis, standalone and Cluster: this
 * test's own main thread is made busy (a synchronous loop) for three TTLs, so nothing on it can
 * renew the key; the keeper must, unless the loop outlasts the stall tolerance.
 */

const TTL_MS = 1500;
const STALL_MS = 3 * TTL_MS;
const keys = new RedisKeys();

function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // no timer, no socket read on this thread
  }
}

interface Backend {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** A writer as a user would build it: a function option and a connection name the keeper's copy must cope with. */
  client(): RedisClient;
  /** A separate connection that lists clients (on every master for a Cluster). */
  clientNames(): Promise<string[]>;
}

function standalone(): Backend {
  let server: RedisServer;
  return {
    name: 'standalone',
    start: async () => {
      server = await startRedisServer();
    },
    stop: () => stopAllRedisServers(),
    client: () => new Redis(server.port, { connectionName: 'keeper-test', retryStrategy: () => 50 }),
    clientNames: async () => {
      const admin = new Redis(server.port);
      try {
        return clientNamesIn(String(await admin.call('CLIENT', 'LIST')));
      } finally {
        admin.disconnect();
      }
    },
  };
}

function cluster(): Backend {
  let handle: RedisClusterHandle;
  return {
    name: 'Redis Cluster',
    start: async () => {
      handle = await startRedisCluster(3);
    },
    stop: () => stopAllRedisServers(),
    client: () => new Cluster(handle.nodes, { redisOptions: { connectionName: 'keeper-test' }, clusterRetryStrategy: () => 50 }),
    clientNames: async () => {
      const names: string[] = [];
      for (const node of handle.nodes) {
        const admin = new Redis(node.port, node.host);
        try {
          names.push(...clientNamesIn(String(await admin.call('CLIENT', 'LIST'))));
        } finally {
          admin.disconnect();
        }
      }
      return names;
    },
  };
}

function clientNamesIn(list: string): string[] {
  return [...list.matchAll(/ name=(\S*)/g)].map((match) => match[1]);
}

describe.each([standalone(), cluster()])('lease keeper thread ($name)', (backend) => {
  const livenesses: NodeLiveness[] = [];
  const clients: RedisClient[] = [];

  beforeAll(() => backend.start(), 60_000);
  afterAll(() => backend.stop());
  afterEach(async () => {
    for (const liveness of livenesses.splice(0)) await liveness.release().catch(() => undefined);
    for (const client of clients.splice(0)) client.disconnect();
  });

  async function startLiveness(nodeId: string, stallToleranceMs: number): Promise<{ liveness: NodeLiveness; events: LeaseEvent[]; logger: MemoryLogger }> {
    const client = backend.client();
    client.on('error', () => undefined);
    clients.push(client);
    const events: LeaseEvent[] = [];
    const logger = new MemoryLogger();
    const liveness = new NodeLiveness({
      ...{ keys, pool: new RedisConnectionPool(createDriver({ pubClient: client, logger })), nodeId, ttlMs: TTL_MS },
      ...{ streamTtlMs: 60_000, ownedTtlMs: 60_000, inboxCap: 10_000, logger, stallToleranceMs },
      onLeaseEvent: (event) => events.push(event),
    });
    livenesses.push(liveness);
    await liveness.acquire();
    liveness.start();
    return { liveness, events, logger };
  }

  it('keeps the key while the main thread is busy for three TTLs: no suspension, the key never lapsed', async () => {
    const { liveness, events, logger } = await startLiveness('keep-1', 30_000);
    const token = liveness.token;

    // Right away: the keeper renews from the moment it is given the token.
    busyFor(STALL_MS);
    // Checked before this thread's timers can run (they would take a lapsed key back): only the
    // keeper's renewals can prove the key now, this thread's last answer is three TTLs old.
    expect(liveness.hasLease()).toBe(true);

    const reader = backend.client();
    clients.push(reader);
    expect(await reader.get(keys.alive('keep-1'))).toBe(token);
    await waitFor('the lease timer to run', () => logger.lines.some((line) => line.includes('the lease keeper thread kept the lease meanwhile')));
    expect(events).toEqual([]);
    expect(liveness.hasLease()).toBe(true);
    expect(liveness.keptThroughStalls).toBe(1);
    // The keeper connected with a copy of the user's settings (its function option left to ioredis).
    expect(await backend.clientNames()).toContain('keeper-test:lease-keeper');
  }, 60_000);

  it('lets the key lapse when the main thread stays busy past the tolerance (a hung thread): the lease is suspended', async () => {
    const { liveness, events } = await startLiveness('hung-1', 500);

    busyFor(STALL_MS);
    expect(liveness.hasLease()).toBe(false);
    await waitFor('the suspension', () => events.includes('suspended'));
  }, 60_000);
});
