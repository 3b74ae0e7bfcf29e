import { createConnection } from 'node:net';
import { RedisAdapter } from '../../lib/redis/redis-adapter.js';
import { keySlot, RedisKeys } from '../../lib/redis/redis-keys.js';
import { command, connectCharger, FakeLocalRegistry, MemoryLogger, startNode, type TestNode } from '../support/redis-fixtures.js';
import { freePort, startRedisCluster, stopAllRedisServers, type RedisClusterHandle } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';
import { ALL_NODES } from '../../lib/cluster/address.js';
import { laneOf } from '../support/addresses.js';

/**
 * Docker/Kubernetes NAT: every node announces an address clients cannot reach (here: its
 * real host with a port nothing listens on), and `natMap` translates it back.
 */
describe('ClusterDriver natMap (nodes announce unreachable addresses)', () => {
  let cluster: RedisClusterHandle;
  /** announced `host:port` → the real address */
  const announced = new Map<string, { host: string; port: number }>();
  const nodes: TestNode[] = [];
  const keys = new RedisKeys();

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
    for (const server of cluster.servers) {
      const fake = await freePort();
      // The bus keeps its real port; only the address given to clients changes.
      server.cli('CONFIG', 'SET', 'cluster-announce-bus-port', String(server.port + 10_000));
      server.cli('CONFIG', 'SET', 'cluster-announce-port', String(fake));
      announced.set(`127.0.0.1:${fake}`, { host: '127.0.0.1', port: server.port });
    }
    // Every node gossips its new address to the others.
    await waitFor('every node to see the announced ports', () =>
      cluster.servers.every((server) => {
        const slots = server.cli('CLUSTER', 'SLOTS');
        return [...announced.keys()].every((address) => slots.includes(address.split(':')[1]));
      }),
    );
  }, 60_000);

  afterAll(async () => {
    await Promise.all(nodes.map((node) => node.adapter.disconnect()));
    await cluster?.stop();
    await stopAllRedisServers();
  });

  async function node(nodeId: string, natMap: ConstructorParameters<typeof RedisAdapter>[0]['cluster']): Promise<TestNode> {
    const started = await startNode(undefined, nodeId, { cluster: natMap, nodeTtlMs: 5000 });
    nodes.push(started);
    return started;
  }

  it('the announced addresses really are unreachable', async () => {
    for (const address of announced.keys()) {
      const port = Number(address.split(':')[1]);
      const reachable = await new Promise<boolean>((resolve) => {
        const socket = createConnection({ host: '127.0.0.1', port });
        socket.once('connect', () => resolve(true));
        socket.once('error', () => resolve(false));
      });
      expect(reachable).toBe(false);
    }
  });

  it('without natMap, a client cannot use them', async () => {
    const adapter = new RedisAdapter({
      cluster: { nodes: [cluster.nodes[0]], readyTimeoutMs: 1000, clusterOptions: { maxRedirections: 4, retryDelayOnFailover: 50 } },
      logger: new MemoryLogger(),
    });
    try {
      await expect(adapter.connect('no-nat', new FakeLocalRegistry('no-nat'))).rejects.toThrow(/cluster transport unavailable/);
    } finally {
      await adapter.disconnect();
    }
  });

  it('translates every announced address (object and function forms) and works on every master', async () => {
    const seed = [cluster.nodes[0]]; // one reachable seed; the rest is learnt from CLUSTER SLOTS
    const a = await node('nat-a', { nodes: seed, natMap: Object.fromEntries(announced) });
    const translated = new Set<string>();
    const b = await node('nat-b', {
      nodes: seed,
      natMap: (address) => {
        const target = announced.get(address) ?? null;
        if (target) translated.add(address);
        return target;
      },
    });
    expect([...translated].sort()).toEqual([...announced.keys()].sort());

    // Identities on every master: claims and a bulk read go to all three.
    const identities = Array.from({ length: 60 }, (_, i) => `NAT-${i}`);
    // CLUSTER NODES shows the announced ports too.
    const masterOf = (slot: number) =>
      cluster.topology().find((info) => info.flags.includes('master') && info.slots.some(([first, last]) => slot >= first && slot <= last))!.port;
    const masters = new Set(identities.map((identity) => masterOf(keySlot(keys.presence(identity)))));
    expect([...masters].every((port) => announced.has(`127.0.0.1:${port}`))).toBe(true);
    expect(masters.size).toBe(3);
    for (const identity of identities) await connectCharger(b, identity);
    const found = await a.adapter.getPresenceBatch(identities);
    expect(found.size).toBe(60);

    const message = command('nat-a', 'NAT-1');
    await a.adapter.publish(laneOf('nat-b', message), message);
    await waitFor('B to get the command', () => b.inbox.ofKind('command').some((received) => received.id === message.id));
    await b.adapter.publish(ALL_NODES, { kind: 'nodeLeft', nodeId: 'nobody' });
    await waitFor('both to get the broadcast', () => a.broadcasts.messages.length === 1 && b.broadcasts.messages.length === 1);
  });
});
