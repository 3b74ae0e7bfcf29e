import { Redis } from 'ioredis';
import { startNode, type TestNode } from '../support/redis-fixtures.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';

/** Script runs (EVALSHA + EVAL) the server has counted so far. */
async function scriptRuns(redis: Redis): Promise<number> {
  const stats = await redis.info('commandstats');
  let runs = 0;
  for (const match of stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) runs += Number(match[1]);
  return runs;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * A node in a connection storm accepts sockets one event-loop turn at a time; each handshake
 * claims presence. Claims that arrive while a claim batch is in flight must wait for it and go
 * together, not one script call each.
 */
describe('presence claims of a storm share script calls (real Redis)', () => {
  let server: RedisServer;
  let redis: Redis;
  let node: TestNode | undefined;

  beforeAll(async () => {
    server = await startRedisServer();
    redis = new Redis(server.port);
  });

  afterEach(async () => {
    await node?.adapter.disconnect();
    node = undefined;
    await redis.flushall();
  });

  afterAll(async () => {
    redis.disconnect();
    await stopAllRedisServers();
  });

  it('300 claims, one per turn, take far fewer than 300 script runs, and every one is stored with its own epoch', async () => {
    node = await startNode(server.url, 'storm-node');
    const identities = Array.from({ length: 300 }, (_, index) => `STORM-${index}`);
    // Warm up: the first claim loads the scripts.
    await node.adapter.setPresence('WARM-UP', 'ocpp1.6', Date.now());
    const before = await scriptRuns(redis);

    // Writes wait while the claims arrive, so the first batch stays in flight as on a busy server
    // (how many claims a quick server answers between two turns depends on the machine's load).
    await redis.call('CLIENT', 'PAUSE', '10000', 'WRITE');
    const claims = [];
    try {
      for (const identity of identities) {
        claims.push(node.adapter.setPresence(identity, 'ocpp1.6', Date.now()));
        await nextTurn();
      }
    } finally {
      await redis.call('CLIENT', 'UNPAUSE');
    }
    const results = await Promise.all(claims);
    const runs = (await scriptRuns(redis)) - before;

    // One turn each, 300 turns: batching per turn alone made one claim run per claim (300, plus
    // the owned-index updates). Held back while a batch is in flight, they share runs (a batch
    // out longer than 50 ms lets the next go, so a slow machine makes a few more).
    expect(runs).toBeLessThan(60);
    expect(results.every((result) => result.previous === null)).toBe(true);
    const stored = await Promise.all(identities.map((identity) => node!.adapter.getPresence(identity)));
    expect(stored.map((record) => record?.nodeId)).toEqual(identities.map(() => 'storm-node'));
    expect(stored.map((record) => record?.epoch)).toEqual(results.map((result) => result.record.epoch));
  });
});
