import { Redis } from 'ioredis';
import type { BroadcastEnvelope } from '../../lib/cluster/envelope.js';
import { command, startNode, type TestNode } from '../support/redis-fixtures.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { sleep, waitFor } from '../support/wait.js';
import { ALL_NODES, inboxOf, type Address, type Subscription } from '../../lib/cluster/address.js';

describe('broadcast and publishBatch across three adapters', () => {
  let server: RedisServer;
  let redis: Redis;
  let nodes: TestNode[] = [];

  beforeAll(async () => {
    server = await startRedisServer();
    redis = new Redis(server.port);
    redis.on('error', () => undefined);
  });

  beforeEach(async () => {
    nodes = [await startNode(server.url, 'A'), await startNode(server.url, 'B'), await startNode(server.url, 'C')];
  });

  afterEach(async () => {
    await Promise.all(nodes.map((node) => node.adapter.disconnect()));
    await redis.flushall();
  });

  afterAll(async () => {
    redis?.disconnect();
    await stopAllRedisServers();
  });

  const broadcast = (origin: string, i = 0): BroadcastEnvelope => ({
    kind: 'broadcast',
    id: `b${i}`,
    origin,
    action: 'TriggerMessage',
    payload: { requestedMessage: 'Heartbeat' },
    deadline: Date.now() + 30_000,
  });

  it('reaches every node, the sender included, once', async () => {
    const [a] = nodes;
    await a.adapter.publish(ALL_NODES, broadcast('A'));
    for (const node of nodes) await waitFor(`${node.nodeId} got it`, () => node.broadcasts.messages.length === 1);
    await sleep(200);
    for (const node of nodes) expect(node.broadcasts.messages).toEqual([broadcast('A')].map((m) => ({ ...m, deadline: expect.any(Number) })));
    expect((await a.adapter.metrics()).activeSubscriptions).toBe(2); // inbox + broadcast channel
    expect((await a.adapter.metrics()).broadcastsSent).toBe(1);
  });

  it('stops delivering after unsubscribe', async () => {
    const [a, b] = nodes;
    await b.adapter.unsubscribe('allNodes');
    expect((await b.adapter.metrics()).activeSubscriptions).toBe(1);
    await a.adapter.publish(ALL_NODES, broadcast('A'));
    await waitFor('A got it', () => a.broadcasts.messages.length === 1);
    await sleep(200);
    expect(b.broadcasts.messages).toHaveLength(0);
  });

  it('publishBatch sends one transaction per node, keeping per-node order, plus broadcasts', async () => {
    const [a, b, c] = nodes;
    const batch = [
      ...Array.from({ length: 30 }, (_, i) => ({ to: inboxOf(i % 2 ? 'B' : 'C'), message: command('A', `CP${i}`) })),
      { to: ALL_NODES, message: broadcast('A', 7) },
    ];
    await a.adapter.publishBatch(batch);
    await waitFor('B got 15', () => b.inbox.messages.length === 15);
    await waitFor('C got 15', () => c.inbox.messages.length === 15);
    expect(b.inbox.messages).toEqual(batch.filter((m) => 'node' in m.to && m.to.node === 'B').map((m) => m.message));
    expect(c.inbox.messages).toEqual(batch.filter((m) => 'node' in m.to && m.to.node === 'C').map((m) => m.message));
    for (const node of nodes) await waitFor(`${node.nodeId} got the broadcast`, () => node.broadcasts.messages.length === 1);
    expect((await a.adapter.metrics()).sent).toBe(30);
  });

  it('refuses addresses it does not know and node ids that cannot be keys', async () => {
    const [a] = nodes;
    await expect(a.adapter.publish({ elsewhere: true } as unknown as Address, broadcast('A'))).rejects.toMatchObject({ code: 'OCPP_INVALID_OPTIONS' });
    await expect(a.adapter.publish(inboxOf('x{y}'), command('A', 'CP1'))).rejects.toMatchObject({ code: 'OCPP_INVALID_OPTIONS' });
    await expect(a.adapter.subscribe('node:B' as unknown as Subscription, () => undefined)).rejects.toMatchObject({ code: 'OCPP_INVALID_OPTIONS' });
  });
});
