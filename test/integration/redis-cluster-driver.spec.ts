import { Cluster } from 'ioredis';
import type { CommandEnvelope } from '../../lib/cluster/envelope.js';
import { ClusterUnavailableError, InvalidOptionsError } from '../../lib/protocol/errors.js';
import { ClusterDriver, type ClusterDriverOptions } from '../../lib/redis/cluster-driver.js';
import { RedisAdapter, type RedisAdapterOptions } from '../../lib/redis/redis-adapter.js';
import { createDriver } from '../../lib/redis/redis-driver.js';
import { StreamAppender } from '../../lib/redis/stream-appender.js';
import { keySlot, RedisKeys } from '../../lib/redis/redis-keys.js';
import { command, connectCharger, startNode, type TestNode, ownerOf } from '../support/redis-fixtures.js';
import { startRedisCluster, stopAllRedisServers, type RedisClusterHandle, type RedisServer } from '../support/redis-server.js';
import { sleep, waitFor } from '../support/wait.js';
import { ALL_NODES } from '../../lib/cluster/address.js';
import { laneOf } from '../support/addresses.js';

function optionError(build: () => unknown): string {
  try {
    build();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptionsError);
    return (error as InvalidOptionsError).option;
  }
  throw new Error('no error thrown');
}

describe('key layout on Redis Cluster', () => {
  it('puts a node\'s keys (inbox stream with its group, liveness, owned set, takeover lock) in one slot, and an identity\'s in one', () => {
    const keys = new RedisKeys('fleet-7:');
    for (const nodeId of ['a', 'node-17', 'csms.eu-west-1.k8s-pod-abc123', 'ü']) {
      const slots = new Set([keys.alive(nodeId), keys.stream(nodeId), keys.owned(nodeId), keys.takeoverLock(nodeId)].map(keySlot));
      expect(slots.size).toBe(1);
    }
    for (const identity of ['CP-1', 'EVSE/01', 'ünïcode-Ω']) {
      expect(keySlot(keys.presence(identity))).toBe(keySlot(keys.presenceEpoch(identity)));
    }
    // Different identities spread over the slots (so over every master).
    expect(new Set(Array.from({ length: 100 }, (_, i) => keySlot(keys.presence(`CP-${i}`)))).size).toBeGreaterThan(90);
  });
});

describe('ClusterDriver options', () => {
  const valid: ClusterDriverOptions = { nodes: [{ host: '127.0.0.1', port: 7000 }] };

  it('names the bad option', () => {
    expect(optionError(() => new ClusterDriver({ nodes: [] }))).toBe('cluster.nodes');
    expect(optionError(() => new ClusterDriver({ nodes: ['127.0.0.1'] }))).toBe('cluster.nodes[0]');
    expect(optionError(() => new ClusterDriver({ nodes: [{ host: 'a', port: 70000 }] }))).toBe('cluster.nodes[0]');
    expect(optionError(() => new ClusterDriver({ ...valid, natMap: { '10.0.0.1': { host: 'a', port: 1 } } }))).toBe('cluster.natMap');
    expect(optionError(() => new ClusterDriver({ ...valid, natMap: { '10.0.0.1:7000': { host: '', port: 1 } } }))).toBe(
      'cluster.natMap["10.0.0.1:7000"]',
    );
    expect(optionError(() => new ClusterDriver({ ...valid, shardedPubSub: 'yes' as never }))).toBe('cluster.shardedPubSub');
    expect(optionError(() => new RedisAdapter({ cluster: { nodes: 'a:1' as never } }))).toBe('cluster.nodes');
    expect(optionError(() => new RedisAdapter({ cluster: { nodes: ['a:1'] }, url: 'redis://a' }))).toBe('url');
    expect(optionError(() => new RedisAdapter({ cluster: { nodes: ['a:1'] }, subClient: {} as never }))).toBe('subClient');
    expect(optionError(() => new RedisAdapter({ driver: {} as never }))).toBe('driver');
    expect(optionError(() => new RedisAdapter({}))).toBe('url');
  });

  it('refuses a pool that mixes standalone and cluster drivers', () => {
    const mixed = (): RedisAdapterOptions => ({
      cluster: { nodes: ['127.0.0.1:1'], clusterOptions: { lazyConnect: true } },
      poolSize: 2,
      driverFactory: () => createDriver({ url: 'redis://127.0.0.1:1', redisOptions: { lazyConnect: true } }),
    });
    expect(optionError(() => new RedisAdapter(mixed()))).toBe('driverFactory');
  });
});

/**
 * The adapter on a real Redis Cluster of 3 masters and 3 replicas: the ClusterDriver in each
 * of its forms, per-master pipelines, redirections, slot migrations and a resharding while
 * traffic runs, and a master killed during traffic. One cluster for the whole file.
 */
describe('RedisAdapter on Redis Cluster (3 masters + 3 replicas)', () => {
  let cluster: RedisClusterHandle;
  const nodes: TestNode[] = [];
  const keys = new RedisKeys();

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 1 });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(nodes.map((node) => node.adapter.disconnect()));
    await cluster?.stop();
    await stopAllRedisServers();
  });

  async function node(nodeId: string, options: Partial<RedisAdapterOptions> = {}): Promise<TestNode> {
    // The node TTL must outlast a failover (cluster-node-timeout 1 s + election here).
    const started = await startNode(undefined, nodeId, {
      ...(options.driver ? {} : { cluster: { nodes: cluster.nodes } }),
      nodeTtlMs: 5000,
      ...options,
    });
    nodes.push(started);
    return started;
  }

  function mastersNow(): RedisServer[] {
    return cluster.masters();
  }

  /** Counts pipelines sent through every writer of `adapter`'s pool. */
  function countPipelines(adapter: RedisAdapter): { count: () => number; restore: () => void } {
    let count = 0;
    const restores = adapter.connectionPool.drivers.map((driver) => {
      const writer = driver.writer as Cluster;
      const original = writer.pipeline;
      writer.pipeline = function (this: Cluster, ...args: Parameters<Cluster['pipeline']>) {
        count++;
        return original.apply(this, args);
      } as Cluster['pipeline'];
      return () => (writer.pipeline = original);
    });
    return { count: () => count, restore: () => restores.forEach((restore) => restore()) };
  }

  /** A sends commands to B's inbox as fast as they go, recording what failed and how. */
  function traffic(from: TestNode, to: TestNode, identity: string) {
    const sent: string[] = [];
    const failures: Error[] = [];
    let running = true;
    const done = (async () => {
      while (running) {
        const message = command(from.nodeId, identity);
        try {
          await from.adapter.publish(laneOf(to.nodeId, message), message);
          sent.push(message.id);
        } catch (error) {
          failures.push(error as Error);
        }
        await sleep(5);
      }
    })();
    return {
      sent,
      failures,
      stop: async () => {
        running = false;
        await done;
      },
    };
  }

  it('runs on a ClusterDriver given as driver, made by driverFactory, or built from the plain cluster option', async () => {
    const a = await node('drv-a'); // redis: { cluster: { nodes } }
    const b = await node('drv-b', {
      driver: new ClusterDriver({ nodes: cluster.nodes.slice(0, 2).map(({ host, port }) => `${host}:${port}`) }),
      poolSize: 3,
      driverFactory: () => new ClusterDriver({ nodes: cluster.nodes }),
    });
    expect(a.adapter.connectionPool.primary).toBeInstanceOf(ClusterDriver);
    expect(b.adapter.connectionPool.drivers.map((driver) => driver instanceof ClusterDriver)).toEqual([true, true, true]);

    const ordered = Array.from({ length: 30 }, (_, i) => command('drv-a', 'CP-ORDER', { payload: { i } }));
    for (const message of ordered) await a.adapter.publish(laneOf('drv-b', message), message);
    await b.adapter.publishBatch([{ to: ALL_NODES, message: { kind: 'nodeLeft', nodeId: 'nobody' } }]);
    await waitFor('B to get the commands', () => b.inbox.ofKind('command').length === 30);
    expect(b.inbox.ofKind('command').map((message) => message.id)).toEqual(ordered.map((message) => message.id));
    await waitFor('both to get the broadcast', () => a.broadcasts.messages.length === 1 && b.broadcasts.messages.length === 1);

    await connectCharger(b, 'CP-ON-B');
    expect((await a.adapter.getPresence('CP-ON-B'))?.nodeId).toBe('drv-b');
    expect((await a.adapter.listPresence()).map((record) => record.identity)).toContain('CP-ON-B');
  });

  it('hands a command appended twice (a write retried after its reply was lost) over twice, in order, and acknowledges every entry', async () => {
    // Running it once is the cluster layer's job for every transport (duplicate-delivery.spec.ts).
    const b = await node('dup-b');
    const twice = command('dup-a', 'CP-DUP');
    const once = command('dup-a', 'CP-DUP');
    const streamKey = keys.stream('dup-b');
    const appender = new StreamAppender(keys, { fallbackCap: 1000, ttlMs: 60_000 });
    await appender.append(b.adapter.connectionPool.pick(streamKey), 'dup-b', streamKey, [twice, twice, once]);
    await waitFor('all three commands', () => b.inbox.ofKind('command').length === 3);
    expect(b.inbox.ofKind('command').map((message) => message.id)).toEqual([twice.id, twice.id, once.id]);
    await waitFor('all three entries acknowledged', async () => (await b.adapter.metrics()).pendingMessages === 0);
  });

  it('reads presence of many identities with one pipeline per master, and follows MOVED when its slot map is stale', async () => {
    // A slot map that only refreshes on MOVED, so the migration below is unknown to it.
    const reader = await node('bulk-reader', {
      cluster: { nodes: cluster.nodes, clusterOptions: { slotsRefreshInterval: 600_000 } },
    });
    const owner = await node('bulk-owner');
    const identities = Array.from({ length: 300 }, (_, i) => `BULK-${i}`);
    for (const identity of identities) await connectCharger(owner, identity);

    const pipelines = countPipelines(reader.adapter);
    const found = await reader.adapter.getPresenceBatch(identities);
    pipelines.restore();
    expect(found.size).toBe(300);
    expect(pipelines.count()).toBe(mastersNow().length);

    // Move the slots of a few identities behind the reader's back: its per-master pipeline now
    // holds keys another master serves, which answer MOVED one by one.
    const moved = identities.slice(0, 5);
    const slots = [...new Set(moved.map((identity) => keySlot(keys.presence(identity))))];
    const target = mastersNow().find((master) => master !== cluster.masterOf(slots[0]))!;
    await cluster.migrateSlots(slots, target);
    const again = await reader.adapter.getPresenceBatch(identities);
    expect(again.size).toBe(300);
    for (const identity of moved) expect(again.get(identity)?.nodeId).toBe('bulk-owner');
    // A claim in a moved slot follows MOVED as well.
    await connectCharger(reader, moved[0]);
    expect((await owner.adapter.getPresence(moved[0]))?.nodeId).toBe('bulk-reader');
  });

  it('keeps delivering, claiming and reading presence while slots migrate (ASK, TRYAGAIN) and during a reshard', async () => {
    const a = await node('mig-a');
    const b = await node('mig-b');
    const identities = Array.from({ length: 40 }, (_, i) => `MIG-${i}`);
    for (const identity of identities) await connectCharger(b, identity);
    const flow = traffic(a, b, 'MIG-0');
    let presenceReads = 0;
    const incomplete: number[] = [];
    let reading = true;
    const reads = (async () => {
      while (reading) {
        const found = await a.adapter.getPresenceBatch(identities);
        presenceReads++;
        if (found.size !== identities.length) incomplete.push(found.size);
        await sleep(20);
      }
    })();
    await waitFor('traffic to flow', () => b.inbox.messages.length > 10);

    // B's own slot (inbox, liveness, owned set), with every key already on the target: the
    // source answers ASK, the blocked inbox read has to move too.
    const nodeSlot = keySlot(keys.stream('mig-b'));
    const nodeTarget = mastersNow().find((master) => master !== cluster.masterOf(nodeSlot))!;
    const nodeMigration = cluster.beginMigration(nodeSlot, nodeTarget);
    while (nodeMigration.moveKeys(10) > 0);
    // An identity whose entry is on the target while its epoch counter is still on the source:
    // the claim script (two keys) gets TRYAGAIN until the slot is whole again.
    const split = 'MIG-SPLIT';
    await connectCharger(b, split);
    b.registry.delete(split); // the charge point moves to A below
    const splitSlot = keySlot(keys.presence(split));
    const splitMigration = cluster.beginMigration(splitSlot, mastersNow().find((master) => master !== cluster.masterOf(splitSlot))!);
    splitMigration.source.cli('MIGRATE', '127.0.0.1', String(splitMigration.target.port), keys.presence(split), '0', '5000', 'REPLACE');
    const claimDuringSplit = a.adapter.setPresence(split, 'ocpp2.0.1', Date.now());
    await sleep(300); // a few TRYAGAIN rounds (ioredis retries them for about 1.6 s)
    await splitMigration.finish();
    expect((await claimDuringSplit).record.nodeId).toBe('mig-a');
    expect(splitMigration.source.cli('INFO', 'errorstats')).toMatch(/errorstat_TRYAGAIN:count=[1-9]/);

    const receivedBefore = b.inbox.messages.length;
    await waitFor('commands to flow through ASK', () => b.inbox.messages.length > receivedBefore + 20);
    await nodeMigration.finish();
    expect(nodeMigration.source.cli('INFO', 'errorstats')).toMatch(/errorstat_ASK:count=[1-9]/);
    await cluster.waitUntilHealthy();

    // An operator's reshard of many slots while everything runs.
    const [from, to] = mastersNow();
    await cluster.reshard(from, to, 300);

    const receivedAfter = b.inbox.messages.length;
    await waitFor('commands to keep flowing', () => b.inbox.messages.length > receivedAfter + 20);
    await flow.stop();
    reading = false;
    await reads;
    expect(flow.failures).toEqual([]);
    await waitFor('every command to arrive', () => b.inbox.ofKind('command').length === flow.sent.length);
    expect(b.inbox.ofKind('command').map((message) => message.id)).toEqual(flow.sent); // in order, none twice
    expect(presenceReads).toBeGreaterThan(5);
    expect(incomplete).toEqual([]);
    expect((await a.adapter.getPresence(split))?.nodeId).toBe('mig-a');
    await waitFor('nothing pending in B', async () => (await b.adapter.metrics()).pendingMessages === 0);
  }, 90_000);

  it('a master killed during traffic: its replica takes over, commands flow again, presence stays right', async () => {
    const a = await node('fo-a');
    const b = await node('fo-b');
    const identities = Array.from({ length: 50 }, (_, i) => `FO-${i}`);
    for (const identity of identities) await connectCharger(b, identity);
    const flow = traffic(a, b, 'FO-0');
    await waitFor('traffic to flow', () => b.inbox.messages.length > 10);

    // The master of B's inbox, liveness key and owned set.
    const victim = cluster.masterOf(keySlot(keys.stream('fo-b')));
    const promoted = await cluster.killMaster(victim);
    expect(cluster.masterOf(keySlot(keys.stream('fo-b')))).toBe(promoted);

    // The blocking reader followed the slot to the promoted replica.
    const receivedAfter = b.inbox.messages.length;
    await waitFor('B to read its inbox again', () => b.inbox.messages.length > receivedAfter + 20, { timeoutMs: 30_000 });
    await flow.stop();
    // A send fails clearly (ClusterUnavailableError) at worst, and only while the switch lasts.
    for (const failure of flow.failures) expect(failure).toBeInstanceOf(ClusterUnavailableError);
    const sentAfterSwitch = flow.sent.slice(-20);
    await waitFor('the commands sent after the switch to arrive', () => {
      const received = new Set(b.inbox.ofKind('command').map((message: CommandEnvelope) => message.id));
      return sentAfterSwitch.every((id) => received.has(id));
    });

    // Presence: every charger still on B, nothing stale, nothing lost.
    await waitFor('presence to be whole on B', async () => {
      const found = await a.adapter.getPresenceBatch(identities);
      return found.size === 50 && [...found.values()].every((record) => record.nodeId === 'fo-b');
    });
    await waitFor('nothing pending in B', async () => (await b.adapter.metrics()).pendingMessages === 0);
    expect(b.adapter.isHealthy()).toBe(true);
    expect(await a.adapter.isNodeAlive('fo-b')).toBe(true);

    // The old master comes back as a replica of the promoted one.
    await cluster.restartNode(victim);
    // Healthy already; every node also drops its "fail" flag for it through gossip, a moment later.
    await waitFor('the old master to be listed as a replica of the promoted one', () => cluster.replicasOf(promoted).includes(victim), { timeoutMs: 20_000 });
  }, 90_000);

  it('a failover onto a replica that lacks writes: the node re-registers its presence when the masters change', async () => {
    // The presence TTL is long: the periodic refresh would not notice within the test.
    const a = await node('lost-a', { presenceTtlSeconds: 3600 });
    const b = await node('lost-b', { presenceTtlSeconds: 3600 });
    const nodeMasters = new Set(['lost-a', 'lost-b'].map((id) => cluster.masterOf(keySlot(keys.alive(id)))));
    const identity = Array.from({ length: 50 }, (_, i) => `LOST-${i}`).find(
      (candidate) => !nodeMasters.has(cluster.masterOf(keySlot(keys.presence(candidate)))),
    )!;
    await connectCharger(b, identity);
    const victim = cluster.masterOf(keySlot(keys.presence(identity)));
    const [replica] = cluster.replicasOf(victim);

    // What asynchronous replication loses when a master dies: here, everything its replica
    // had (a replica accepts a keyless FLUSHALL once writable), so the entry is gone for sure.
    replica.cli('CONFIG', 'SET', 'replica-read-only', 'no');
    replica.cli('FLUSHALL');
    replica.cli('CONFIG', 'SET', 'replica-read-only', 'yes');
    await cluster.killMaster(victim);

    await waitFor('the lost entry to be back', async () => (await ownerOf(a.adapter, identity)) === 'lost-b', { timeoutMs: 20_000 });
    expect(b.logger.lines).toContain('log recovering cluster state: redis cluster masters changed');
    await cluster.restartNode(victim);
  }, 90_000);
});
