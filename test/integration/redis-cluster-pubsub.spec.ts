import { ClusterDriver } from '../../lib/redis/cluster-driver.js';
import { RedisAdapter } from '../../lib/redis/redis-adapter.js';
import { keySlot, RedisKeys } from '../../lib/redis/redis-keys.js';
import { FakeLocalRegistry, Inbox, MemoryLogger } from '../support/redis-fixtures.js';
import { startRedisCluster, stopAllRedisServers, type RedisClusterHandle } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';
import { ALL_NODES } from '../../lib/cluster/address.js';

type Mode = 'classic' | 'sharded';

/**
 * Broadcasts on Redis Cluster over classic PUBLISH (the default) and over sharded pub/sub
 * (`shardedPubSub: true`). The measurement behind the default is test/measure/redis-cluster-pubsub.measure.ts
 * (`npm run measure:pubsub`, not part of `npm test`).
 */
describe('broadcasts on Redis Cluster (3 masters + 3 replicas)', () => {
  let cluster: RedisClusterHandle;
  const drivers: ClusterDriver[] = [];
  const adapters: RedisAdapter[] = [];
  const logger = new MemoryLogger();

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 1 });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(adapters.map((adapter) => adapter.disconnect()));
    await Promise.all(drivers.map((driver) => driver.close()));
    await cluster?.stop();
    await stopAllRedisServers();
  });

  it('reaches every node in both modes, over SUBSCRIBE by default and SSUBSCRIBE with shardedPubSub', async () => {
    for (const mode of ['classic', 'sharded'] as Mode[]) {
      const prefix = `pubsub-${mode}:`;
      const inboxes: Inbox[] = [];
      const nodes: RedisAdapter[] = [];
      for (let i = 0; i < 3; i++) {
        const adapter = new RedisAdapter({
          cluster: { nodes: cluster.nodes, ...(mode === 'sharded' ? { shardedPubSub: true } : {}) },
          prefix,
          logger,
        });
        adapters.push(adapter);
        nodes.push(adapter);
        const inbox = new Inbox();
        inboxes.push(inbox);
        await adapter.connect(`n${i}`, new FakeLocalRegistry(`n${i}`));
        await adapter.subscribe('allNodes', inbox.handler);
      }
      const channel = new RedisKeys(prefix).broadcastChannel;
      const master = cluster.masterOf(keySlot(channel));
      if (mode === 'sharded') expect(master.cli('PUBSUB', 'SHARDCHANNELS')).toContain(channel);
      else expect(cluster.servers.some((server) => server.cli('PUBSUB', 'CHANNELS').includes(channel))).toBe(true);
      const otherKind = mode === 'sharded' ? 'CHANNELS' : 'SHARDCHANNELS';
      expect(cluster.servers.some((server) => server.cli('PUBSUB', otherKind).includes(channel))).toBe(false);

      await nodes[2].publish(ALL_NODES, { kind: 'nodeLeft', nodeId: `gone-${mode}` });
      await waitFor(`every ${mode} subscriber to get it`, () => inboxes.every((inbox) => inbox.messages.length === 1));
    }
  });

  /** Subscribers of `channel` over every node of the cluster (classic pub/sub). */
  function subscribers(channel: string): number {
    return cluster.running.reduce((sum, server) => sum + Number(server.cli('PUBSUB', 'NUMSUB', channel).trim().split(/\s+/)[1]), 0);
  }

  // An ioredis Cluster client can come out of an outage of the whole cluster with its pub/sub
  // connection subscribed to nothing (the cluster e2e after a restart of every Redis node: one
  // sample node never heard a broadcast again). The adapter must not stay deaf.
  it('a node whose pub/sub connection lost its classic subscription hears broadcasts again', async () => {
    const prefix = 'pubsub-lost:';
    const channel = new RedisKeys(prefix).broadcastChannel;
    const inboxes: Inbox[] = [];
    const nodes: RedisAdapter[] = [];
    const own: ClusterDriver[] = [];
    for (let i = 0; i < 2; i++) {
      const driver = new ClusterDriver({ nodes: cluster.nodes });
      drivers.push(driver);
      own.push(driver);
      const adapter = new RedisAdapter({ driver, prefix, logger });
      adapters.push(adapter);
      nodes.push(adapter);
      const inbox = new Inbox();
      inboxes.push(inbox);
      await adapter.connect(`lost-${i}`, new FakeLocalRegistry(`lost-${i}`));
      await adapter.subscribe('allNodes', inbox.handler);
    }
    expect(subscribers(channel)).toBe(2);
    // The state ioredis leaves behind: the connection is up and subscribed to nothing.
    await own[1].subscriber.unsubscribe(channel);
    expect(subscribers(channel)).toBe(1);

    await waitFor('the lost subscription to come back', () => subscribers(channel) === 2, { timeoutMs: 20_000 });
    await nodes[0].publish(ALL_NODES, { kind: 'nodeLeft', nodeId: 'gone-lost' });
    await waitFor('both nodes to hear the broadcast', () => inboxes.every((inbox) => inbox.messages.length === 1));
  }, 60_000);
});
