import { Redis } from 'ioredis';
import { ClusterUnavailableError } from '../../lib/protocol/errors.js';
import { RedisKeys } from '../../lib/redis/redis-keys.js';
import {
  connectCharger,
  HeldClients,
  ownerOf,
  startNode,
  type TestNode,
} from '../support/redis-fixtures.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';
import { inboxOf } from '../../lib/cluster/address.js';

/**
 * ocpp-ws-io's reproduced bug: after a Redis restart, node A re-registers a charge point that
 * moved to node B, and calls to it fail for ~100 s. Here the newer owner must win whatever the
 * order in which A and B come back.
 */
describe('RedisAdapter presence across a Redis restart', () => {
  let server: RedisServer;
  let redis: Redis;
  const nodes: TestNode[] = [];
  const held: HeldClients[] = [];
  const keys = new RedisKeys();

  beforeAll(async () => {
    server = await startRedisServer();
    redis = new Redis(server.port);
    redis.on('error', () => undefined);
  });

  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((node) => node.adapter.disconnect()));
    for (const clients of held.splice(0)) clients.disconnect();
    await redis.flushall().catch(() => undefined);
  });

  afterAll(async () => {
    redis?.disconnect();
    await stopAllRedisServers();
  });

  async function node(nodeId: string, clients?: HeldClients): Promise<TestNode> {
    const started = clients
      ? await startNode(server.url, nodeId, { url: undefined, pubClient: clients.pubClient, subClient: clients.subClient, blockingClient: clients.blockingClient })
      : await startNode(server.url, nodeId);
    nodes.push(started);
    return started;
  }

  function heldClients(name: string): HeldClients {
    const clients = new HeldClients(server.port, name);
    held.push(clients);
    return clients;
  }

  async function restartRedis(): Promise<void> {
    await server.restart();
    await redis.ping();
  }

  it('B claims the moved charge point first; A comes back later and must not take it over', async () => {
    const aClients = heldClients('A');
    const a = await node('A', aClients);
    const b = await node('B');
    const onA = await connectCharger(a, 'X');

    aClients.held = true;
    await restartRedis();
    // The charge point reconnects to B while A is still cut off (A's socket is half-open).
    await waitFor('B back', () => b.adapter.isHealthy());
    const claim = await b.adapter.setPresence('X', 'ocpp1.6', Date.now());
    expect(claim.previous).toBeNull();
    b.registry.set({ identity: 'X', epoch: claim.record.epoch, protocol: 'ocpp1.6', connectedAt: claim.record.connectedAt });
    expect((await a.adapter.metrics()).recoveries).toBe(0);

    await aClients.release();
    await waitFor('A recovered', async () => (await a.adapter.metrics()).recoveries >= 1);
    expect((await b.adapter.getPresence('X'))?.nodeId).toBe('B');
    expect((await a.adapter.getPresence('X'))?.nodeId).toBe('B');
    // A's node is told that its socket is stale (it closes it; nothing goes through its inbox).
    const superseded = await waitFor('A told X is superseded', () => a.registry.restores.find((restore) => restore.kind === 'superseded'));
    expect(superseded).toEqual({ kind: 'superseded', identity: 'X', epoch: onA.epoch, newOwner: 'B' });
    expect(a.inbox.ofKind('evict')).toEqual([]);
    // Later refreshes by A do not bring it back either.
    const stored = await redis.hgetall(keys.presence('X'));
    expect(stored.node).toBe('B');
  });

  it('A comes back first and re-registers; B claims afterwards and wins, learning that A held it', async () => {
    const a = await node('A');
    const bClients = heldClients('B');
    const b = await node('B', bClients);
    const onA = await connectCharger(a, 'X');

    bClients.held = true;
    await restartRedis();
    await waitFor('A recovered', async () => (await a.adapter.metrics()).recoveries >= 1);
    expect((await a.adapter.getPresence('X'))?.epoch).toBe(onA.epoch);

    await bClients.release();
    await waitFor('B back', () => b.adapter.isHealthy());
    const claim = await b.adapter.setPresence('X', 'ocpp1.6', Date.now());
    expect(claim.previous).toMatchObject({ nodeId: 'A', epoch: onA.epoch });
    expect(claim.record.epoch).toBeGreaterThan(onA.epoch);
    b.registry.set({ identity: 'X', epoch: claim.record.epoch, protocol: 'ocpp1.6', connectedAt: claim.record.connectedAt });
    expect((await a.adapter.getPresence('X'))?.nodeId).toBe('B');
  });

  it('a socket B accepted during the outage (no epoch yet) is adopted and displaces A', async () => {
    const a = await node('A');
    const bClients = heldClients('B');
    const b = await node('B', bClients);
    const onA = await connectCharger(a, 'X');

    bClients.held = true;
    await restartRedis();
    await waitFor('A recovered', async () => (await a.adapter.metrics()).recoveries >= 1);
    // While B is cut off, X connects to it: the router's claim failed, the socket has epoch 0.
    b.registry.set({ identity: 'X', epoch: 0, protocol: 'ocpp1.6', connectedAt: Date.now() });

    await bClients.release();
    await waitFor('B owns X', async () => (await ownerOf(a.adapter, 'X')) === 'B');
    // B's node learns the epoch its socket now holds (the node keeps it), and whom it displaced (it evicts them).
    const registered = b.registry.restores.find((restore) => restore.kind === 'registered');
    expect(registered).toEqual({ kind: 'registered', identity: 'X', epoch: expect.any(Number) });
    expect(b.registry.records.get('X')?.epoch).toBe((registered as { epoch: number }).epoch);
    expect(await waitFor('B told whom it displaced', () => b.registry.restores.find((restore) => restore.kind === 'displaced'))).toEqual({
      kind: 'displaced',
      identity: 'X',
      previous: expect.objectContaining({ nodeId: 'A', epoch: onA.epoch }),
    });
    // The node acts on that notice: A's older socket is evicted (closed), so A no longer re-registers it.
    a.registry.delete('X');
    // When B's socket closes, the node removes the entry under the epoch it was told.
    const epoch = b.registry.records.get('X')!.epoch;
    b.registry.delete('X');
    expect(await b.adapter.removePresence('X', epoch)).toBe(true);
    // Right after A's recovery an absent entry reads as "in doubt"; once trusted, as nobody.
    await waitFor('X to read as nobody', async () => (await ownerOf(a.adapter, 'X')) === null);
  });

  it('everything comes back after a restart: liveness, inbox group, presence; unicast works again', async () => {
    const a = await node('A');
    const b = await node('B');
    await connectCharger(a, 'CP-A');
    await connectCharger(b, 'CP-B');
    await restartRedis();
    await waitFor('both recovered', async () =>
      (await Promise.all([a, b].map(async (n) => (await n.adapter.metrics()).recoveries >= 1 && n.adapter.isHealthy()))).every(Boolean),
    );
    expect(await redis.exists(keys.alive('A'), keys.alive('B'))).toBe(2);
    expect((await a.adapter.getPresence('CP-B'))?.nodeId).toBe('B');
    expect((await b.adapter.getPresence('CP-A'))?.nodeId).toBe('A');
    await a.adapter.publish(inboxOf('B'), { kind: 'evict', identity: 'CP-B', epoch: 1, newOwner: 'A' });
    await waitFor('B got the message', () => b.inbox.ofKind('evict').length === 1);
    expect(new Set((await a.adapter.listPresence()).map((r) => r.identity))).toEqual(new Set(['CP-A', 'CP-B']));
  });

  it('an entry whose node lost its liveness key is unavailable (not offline) until a survivor takes that node over', async () => {
    const a = await node('A');
    const c = await startNode(server.url, 'C', { takeoverIntervalMs: 60_000 });
    nodes.push(c);
    await connectCharger(a, 'X');
    expect((await c.adapter.getPresence('X'))?.nodeId).toBe('A');
    a.adapter.abort();
    nodes.splice(nodes.indexOf(a), 1);
    await redis.del(keys.alive('A'));
    // Lapsed, not taken over: A may be frozen or cut off and take its key back.
    await waitFor('X unavailable', () => c.adapter.getPresence('X').then(() => false, (error: Error) => error instanceof ClusterUnavailableError));
    await expect(c.adapter.getPresence('X')).rejects.toThrow('its node A cannot prove its lease and was not taken over');
    expect((await c.adapter.getPresenceBatch(['X'])).get('X')?.nodeId).toBe('A'); // a batch leaves it to A's inbox
    expect(await c.adapter.isNodeAlive('A')).toBe(false);
    expect(await c.adapter.listPresence()).toEqual([]);

    // A survivor takes A over (its check is made to run now): A is proven gone, X is offline.
    const b = await node('B');
    await waitFor('B took A over', () => b.nodeLoss.takeovers === 1);
    expect(await c.adapter.getPresence('X')).toBeNull();
    expect((await c.adapter.getPresenceBatch(['X'])).size).toBe(0);
  });
});
