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
});
