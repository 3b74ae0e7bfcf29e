import { Cluster, Redis } from 'ioredis';
import { PresenceStore } from '../../lib/redis/presence-store.js';
import { RedisAdapter, type RedisAdapterOptions } from '../../lib/redis/redis-adapter.js';
import { RedisConnectionPool } from '../../lib/redis/redis-connection-pool.js';
import { createDriver } from '../../lib/redis/redis-driver.js';
import { keySlot, RedisKeys } from '../../lib/redis/redis-keys.js';
import { PRESENCE_REMOVE_IF_OWNER } from '../../lib/redis/lua-scripts.js';
import { command, commandCalls, FakeLocalRegistry, Inbox, MemoryLogger, replies } from '../support/redis-fixtures.js';
import { startRedisCluster, stopAllRedisServers, type RedisClusterHandle } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';
import { ALL_NODES, inboxOf } from '../../lib/cluster/address.js';
import { NodeLoss } from '../../lib/cluster/node-loss.js';
import { laneOf } from '../support/addresses.js';

/** The same adapter on a 3-master Redis Cluster: nothing may need a cross-slot operation. */
describe('RedisAdapter on Redis Cluster (3 masters)', () => {
  let cluster: RedisClusterHandle;
  let probe: Redis;
  const clients: Cluster[] = [];
  const adapters: RedisAdapter[] = [];
  const keys = new RedisKeys();

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    probe = new Redis(cluster.servers[0].port);
    probe.on('error', () => undefined);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([...lossOf.values()].map((nodeLoss) => nodeLoss.stop()));
    await Promise.all(adapters.map((adapter) => adapter.disconnect()));
    for (const client of clients) client.disconnect();
    probe?.disconnect();
    await stopAllRedisServers();
  });

  function clusterClient(options: ConstructorParameters<typeof Cluster>[1] = {}): Cluster {
    const client = new Cluster(cluster.nodes, options);
    client.on('error', () => undefined);
    clients.push(client);
    return client;
  }

  const clientsOf = new Map<RedisAdapter, Cluster[]>();
  /** The cluster layer's node-loss policy over each adapter, as a node runs it (the adapter only offers the primitives). */
  const lossOf = new Map<RedisAdapter, NodeLoss>();

  async function node(nodeId: string, inbox: Inbox, options: Partial<RedisAdapterOptions> = {}): Promise<RedisAdapter> {
    const own = [
      clusterClient({ redisOptions: { connectionName: `${nodeId}-writer` } }),
      clusterClient({ redisOptions: { connectionName: `${nodeId}-subscriber` } }),
      clusterClient({ redisOptions: { connectionName: `${nodeId}-blocking`, maxRetriesPerRequest: null } }),
    ];
    const logger = new MemoryLogger();
    const adapter = new RedisAdapter({
      pubClient: own[0],
      subClient: own[1],
      blockingClient: own[2],
      nodeTtlMs: 1500,
      takeoverIntervalMs: 200,
      logger,
      ...options,
    });
    adapters.push(adapter);
    clientsOf.set(adapter, own);
    const nodeLoss = new NodeLoss({ nodeId, adapter, logger });
    lossOf.set(adapter, nodeLoss);
    await adapter.connect(nodeId, new FakeLocalRegistry(nodeId));
    nodeLoss.start();
    await adapter.subscribe('node', inbox.handler);
    await adapter.subscribe('allNodes', inbox.handler);
    return adapter;
  }

  it('computes slots exactly as the cluster does', async () => {
    const samples = [keys.alive('n1'), keys.stream('node-7'), keys.presence('CP-1'), keys.presenceEpoch('é'), keys.registry, 'foo'];
    for (const key of samples) expect(await probe.cluster('KEYSLOT', key)).toBe(keySlot(key));
  });

  it('batches presence scripts per slot: same-tick claims and a mixed rehydrate over many slots', async () => {
    const store = new PresenceStore({
      keys,
      pool: new RedisConnectionPool(createDriver({ pubClient: clusterClient(), logger: new MemoryLogger() })),
      presenceTtlMs: 60_000,
    });
    // SLOT-0 and a partner whose keys share its slot, so that one script call carries both.
    const slotOf = (identity: string) => keySlot(keys.presence(identity));
    let partner = 0;
    while (slotOf(`PAIR-${partner}`) !== slotOf('SLOT-0')) partner++;
    const pair = ['SLOT-0', `PAIR-${partner}`];
    const identities = [...Array.from({ length: 300 }, (_, i) => `SLOT-${i}`), pair[1]];

    const claimsOfX = await Promise.all(identities.map((identity) => store.claim(identity, 'X', 'ocpp1.6', 1)));
    // Y reconnects some of them later: one of the pair (not the other), and every tenth identity.
    const movedToY = new Set([pair[0], ...identities.filter((identity, i) => i % 10 === 0 && identity !== pair[1])]);
    const claimsOfY = await Promise.all([...movedToY].map((identity) => store.claim(identity, 'Y', 'ocpp1.6', 2)));

    for (const server of cluster.running) server.cli('FLUSHALL');
    // X comes back first and writes everything; Y comes back and displaces X where it is newer.
    const first = await store.rehydrate(claimsOfX.map((claim) => claim.record), 'X');
    expect(first.every((result) => result.status === 'written')).toBe(true);
    const second = await store.rehydrate(claimsOfY.map((claim) => claim.record), 'Y');
    expect(second.every((result) => result.status === 'displaced')).toBe(true);
    // X re-registering again keeps its own entries and is refused where Y is newer.
    const third = await store.rehydrate(claimsOfX.map((claim) => claim.record), 'X');
    for (const result of third) {
      expect(result.status).toBe(movedToY.has(result.record.identity) ? 'refused' : 'kept');
    }
    const owners = await store.getBatch(identities);
    for (const identity of identities) expect(owners.get(identity)?.nodeId).toBe(movedToY.has(identity) ? 'Y' : 'X');
    expect(owners.get(pair[1])?.nodeId).toBe('X');
    for (const server of cluster.running) server.cli('FLUSHALL');
  });

  it('removes a same-turn batch over many slots with one script call per slot, never a newer claim', async () => {
    const store = new PresenceStore({
      keys,
      pool: new RedisConnectionPool(createDriver({ pubClient: clusterClient(), logger: new MemoryLogger() })),
      presenceTtlMs: 60_000,
    });
    const identities = Array.from({ length: 300 }, (_, i) => `GONE-${i}`);
    const claims = await Promise.all(identities.map((identity) => store.claim(identity, 'X', 'ocpp1.6', 1)));
    // Every tenth identity reconnected on Y since: X's removal must leave it.
    const movedToY = identities.filter((_, i) => i % 10 === 0);
    await Promise.all(movedToY.map((identity) => store.claim(identity, 'Y', 'ocpp1.6', 2)));
    const neverClaimed = Array.from({ length: 30 }, (_, i) => `NEVER-${i}`);
    for (const server of cluster.running) server.cli('SCRIPT', 'LOAD', PRESENCE_REMOVE_IF_OWNER.lua);
    const evalshaCalls = () => cluster.running.reduce((sum, server) => sum + commandCalls(server.cli('INFO', 'commandstats'), 'evalsha'), 0);
    const before = evalshaCalls();

    const removed = await Promise.all([
      ...claims.map(({ record }) => store.remove(record.identity, 'X', record.epoch)),
      ...neverClaimed.map((identity) => store.remove(identity, 'X', 1)),
    ]);

    const slots = new Set([...identities, ...neverClaimed].map((identity) => keySlot(keys.presence(identity))));
    expect(evalshaCalls() - before).toBe(slots.size);
    expect(removed).toEqual([...identities.map((identity) => !movedToY.includes(identity)), ...neverClaimed.map(() => false)]);
    const left = await store.getBatch([...identities, ...neverClaimed]);
    expect([...left.keys()].sort()).toEqual([...movedToY].sort());
    expect([...left.values()].every((record) => record.nodeId === 'Y')).toBe(true);
    expect((await store.listOwned('X')).length).toBe(0);
    expect((await store.ownedIdentities('X')).sort()).toEqual([...movedToY].sort());
    for (const server of cluster.running) server.cli('FLUSHALL');
  });

  it('claims, reads in bulk, sends, broadcasts and takes over without a CROSSSLOT error', async () => {
    const inboxA = new Inbox();
    const inboxB = new Inbox();
    const a = await node('A', inboxA);
    const b = await node('B', inboxB);

    const identities = Array.from({ length: 300 }, (_, i) => `CP-${i}`);
    for (const identity of identities) await (identity.endsWith('7') ? b : a).setPresence(identity, 'ocpp2.0.1', Date.now());
    const owners = await b.getPresenceBatch(identities);
    expect(owners.size).toBe(300);
    expect(owners.get('CP-7')?.nodeId).toBe('B');
    expect((await a.listPresence()).length).toBe(300);

    const toB = command('A', 'CP-7');
    await a.publish(laneOf('B', toB), toB);
    await a.publishBatch([{ to: inboxOf('B'), message: command('A', 'CP-17') }, { to: ALL_NODES, message: { kind: 'nodeLeft', nodeId: 'x' } }]);
    await waitFor('B got both commands', () => inboxB.ofKind('command').length === 2);
    await waitFor('both got the broadcast', () => inboxA.ofKind('nodeLeft').length === 1 && inboxB.ofKind('nodeLeft').length === 1);
    // The XACK follows the handler (batched on the next turn): wait for it, then nothing may stay pending.
    await waitFor('B acknowledged both commands', async () => (await b.metrics()).acked === 2);
    const metrics = await b.metrics();
    expect(metrics.pendingMessages).toBe(0);
    expect(metrics.activeSubscriptions).toBe(2);

    // A dies; B answers for it and cleans up its keys and presence.
    adapters.splice(adapters.indexOf(a), 1);
    await lossOf.get(a)!.stop();
    lossOf.delete(a);
    a.abort();
    for (const client of clientsOf.get(a)!) client.disconnect(); // the process is gone, its sockets too
    await waitFor('A has no connection left', () =>
      cluster.servers.every((server) => !server.cli('CLIENT', 'LIST').includes('name=A-')),
    );
    const forA = command('B', 'CP-1');
    await b.publish(laneOf('A', forA), forA);
    const reply = await waitFor('answer for the dead node', () => inboxB.ofKind('reply').find((r) => r.id === forA.id));
    expect(reply.outcome).toEqual({ status: 'notConnected', reason: 'node A died' });
    await waitFor('A removed', async () => (await b.getPresenceBatch(identities)).size === 30);
    expect(await b.isNodeAlive('A')).toBe(false);
  });

  it('reads inbox and replies in one XREADGROUP (one slot), and the replies alone at maxInFlight', async () => {
    expect(keySlot(keys.replies('sat-a'))).toBe(keySlot(keys.stream('sat-a')));
    const held = new Inbox();
    held.holdCommands = true;
    const sender = await node('sat-s', new Inbox());
    await node('sat-a', held, { maxInFlight: 2, readBatchSize: 2 });
    for (let i = 0; i < 4; i++) await sender.publish(laneOf('sat-a', command('sat-s', `CP${i}`)), command('sat-s', `CP${i}`));
    await waitFor('sat-a holds maxInFlight commands', () => held.ofKind('command').length === 2);
    const answers = replies('sat-s', 2);
    for (const answer of answers) await sender.publish(laneOf('sat-a', answer), answer);
    await waitFor('sat-a got the answers to its own calls', () => held.ofKind('reply').length === answers.length);
    expect(held.ofKind('command')).toHaveLength(2);
  });
});
