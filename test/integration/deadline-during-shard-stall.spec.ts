import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import type { WebSocket } from 'ws';
import { OcppTimeoutError } from '../../lib/protocol/errors.js';
import { RedisKeys } from '../../lib/redis/redis-keys.js';
import { openAnsweringCharger, startClusterNode, type RunningClusterNode } from '../support/cluster-node.js';
import { startRedisCluster, stopAllRedisServers, type RedisClusterHandle, type RedisServer } from '../support/redis-server.js';
import { sleep, waitFor, withTimeout } from '../support/wait.js';

/**
 * One Redis Cluster master stalls (DEBUG SLEEP) while everything a call reads first lives on
 * the others: presence is read, then the publish to the owner's inbox waits on the stalled
 * master. The caller is still answered at its deadline, not when the master wakes.
 */
describe('a call whose publish is held up by a stalled Redis Cluster master', () => {
  const SLEEP_S = 4;
  const keys = new RedisKeys();
  let cluster: RedisClusterHandle;
  let admin: Redis;
  const nodes: RunningClusterNode[] = [];
  const sockets: WebSocket[] = [];

  beforeAll(async () => {
    // DEBUG SLEEP on; a node timeout longer than the sleep, so the sleeping master is not failed.
    cluster = await startRedisCluster({ masters: 3, replicas: 0, nodeTimeoutMs: 15_000, args: ['--enable-debug-command', 'yes'] });
    admin = new Redis(cluster.masters()[0].port);
  }, 60_000);

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.terminate();
    await Promise.all(nodes.splice(0).map((node) => node.stop().catch(() => undefined)));
  });

  afterAll(async () => {
    admin?.disconnect();
    await stopAllRedisServers();
  });

  const masterOfKey = async (key: string): Promise<RedisServer> => cluster.masterOf(Number(await admin.cluster('KEYSLOT', key)));

  /** The first of `candidates` none of whose keys lives on `avoid`. */
  async function awayFrom(avoid: RedisServer, candidates: string[], keysOf: (name: string) => string[]): Promise<string> {
    for (const name of candidates) {
      const masters = await Promise.all(keysOf(name).map(masterOfKey));
      if (masters.every((master) => master.port !== avoid.port)) return name;
    }
    throw new Error(`every candidate has a key on port ${avoid.port}`);
  }

  async function setUp(): Promise<{ a: RunningClusterNode; received: string[]; identity: string; stalled: RedisServer }> {
    const stalled = await masterOfKey(keys.stream('shard-b'));
    const range = (prefix: string) => Array.from({ length: 50 }, (_, i) => `${prefix}${i}`);
    const aId = await awayFrom(stalled, range('shard-a-'), (id) => [...keys.nodeKeys(id), keys.holder(id), keys.registry]);
    const identity = await awayFrom(stalled, range('SHARD-'), (id) => [keys.presence(id), keys.presenceEpoch(id)]);
    const adapter = { url: undefined, cluster: { nodes: cluster.nodes }, nodeTtlMs: 8000 };
    const a = await startClusterNode('', aId, { adapter });
    const b = await startClusterNode('', 'shard-b', { adapter });
    nodes.push(a, b);
    const charger = await openAnsweringCharger(b.urlOf(identity));
    sockets.push(charger.socket);
    await waitFor(`${identity} on shard-b`, async () => (await a.node.getPresence(identity))?.nodeId === 'shard-b');
    return { a, received: charger.received, identity, stalled };
  }

  /** DEBUG SLEEP on `master`, sent before anything else is asked of it; `isOver` once it answers. */
  async function stall(master: RedisServer): Promise<{ isOver: () => boolean; over: Promise<void> }> {
    const client = new Redis(master.port);
    // Connected first, so that the sleep is on the wire before the call starts.
    await client.ping();
    let done = false;
    const over = client.call('DEBUG', 'SLEEP', String(SLEEP_S)).then(() => {
      done = true;
      client.disconnect();
    });
    return { isOver: () => done, over };
  }

  it('broadcastBatch gives every outcome at its deadline, and the charger never gets the command', async () => {
    const { a, received, identity, stalled } = await setUp();
    const sleeping = await stall(stalled);
    const outcomes = await withTimeout(
      a.node.broadcastBatch([identity], 'DataTransfer', { vendorId: 'stalled-batch' }, { timeoutMs: 500 }),
      20_000,
      'the batch to settle',
    );
    expect(sleeping.isOver()).toBe(false);
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0].status).toBe('rejected');
    expect((outcomes[0] as { error: Error }).error).toBeInstanceOf(OcppTimeoutError);
    await sleeping.over;
    await sleep(1000);
    // Appended once the master woke, past its deadline: B never runs it.
    expect(received.filter((call) => call.includes('stalled-batch'))).toEqual([]);
  });

  it('broadcast answers by its deadline (+ the 1 s for reports), and no charger gets it after', async () => {
    const { a, received, stalled } = await setUp();
    const sleeping = await stall(stalled);
    const outcome = await withTimeout(
      a.node.broadcast('DataTransfer', { vendorId: 'stalled-broadcast' }, { timeoutMs: 500 }).catch((error: unknown) => error),
      20_000,
      'the broadcast to settle',
    );
    expect(sleeping.isOver()).toBe(false);
    // Either nothing was sent (the live nodes could not be read in time), or the summary counts what
    // reached a charger by then (pub/sub and B's report need not touch the stalled master).
    if (outcome instanceof Error) expect(outcome).toBeInstanceOf(OcppTimeoutError);
    const reported = outcome instanceof Error ? 0 : (outcome as { delivered: number }).delivered;
    await sleeping.over;
    await sleep(1000);
    // Nothing reached a charger beyond what the summary reported: nothing after the deadline.
    expect(received.filter((call) => call.includes('stalled-broadcast'))).toHaveLength(reported);
  });
});
