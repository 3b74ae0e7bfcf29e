import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { keySlot, RedisKeys } from '../../lib/redis/redis-keys.js';
import { connectExpectingRefusalWindow, connectedChargePoint, createRPCError } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { CsmsProcess } from '../support/csms-process.js';
import { startRedisCluster, startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import type { RedisClusterHandle, RedisServer } from '../support/redis-server.js';
import { sleep, waitFor } from '../support/wait.js';
import { startNatsServer, stopAllNatsServers, type NatsServer } from '../support/nats-server.js';

/**
 * The cluster contract end to end: sample CSMS nodes as separate processes, ocpp-rpc
 * RPCClients as charge points, on three backends: one standalone Redis (REDIS_URL), a Redis
 * Cluster of 3 masters + 3 replicas (REDIS_CLUSTER_NODES), and a NATS JetStream server
 * (NATS_URL). The suite is the same; the outages are the ones an operator of each would see.
 */

// A short drain: a node stopped with chargers on it (node-c2) leaves the cluster at once instead
// of spreading their closes over 10 s and waiting 10 s for them to come back elsewhere.
const NODE_ENV = { OCPP_CALL_TIMEOUT_MS: '20000', OCPP_DRAIN_WINDOW_MS: '200', OCPP_DRAIN_SETTLE_MS: '200' };
/** Generous bound on how long after a Redis fault ended a node may still refuse charge points (503). */
const REFUSAL_BOUND_MS = 10_000;

/** Where the sample processes find Redis, and how the tests disturb it. */
interface Backend {
  readonly name: string;
  readonly kind: 'standalone' | 'cluster' | 'nats';
  start(): Promise<void>;
  /** The sample's environment for this backend (Redis address, node TTL). */
  env(): Record<string, string>;
  /** Redis goes away entirely (every server of it). */
  stop(): Promise<void>;
  /** ...and comes back empty. */
  restart(): Promise<void>;
  /** CLIENT KILL of every connection `nodeId` holds (on every server); returns how many (Redis only). */
  killConnectionsOf?(nodeId: string): Promise<number>;
  /** The Redis Cluster, on the cluster backend (once started). */
  readonly cluster?: RedisClusterHandle;
}

/** Ids of the connections a sample node opened (they are named `ocpp-cluster:<node>:<role>`). */
function connectionIds(clientList: string, nodeId: string): string[] {
  return clientList
    .split('\n')
    .filter((line) => line.includes(` name=ocpp-cluster:${nodeId}:`) || line.includes(`:ocpp-cluster:${nodeId}:`))
    .map((line) => /id=(\d+)/.exec(line)![1]);
}

function standalone(): Backend {
  let redis: RedisServer;
  return {
    name: 'standalone Redis',
    kind: 'standalone',
    start: async () => {
      redis = await startRedisServer();
    },
    env: () => ({ REDIS_URL: redis.url, OCPP_NODE_TTL_MS: '2000' }),
    stop: () => redis.stop(),
    restart: () => redis.start(),
    killConnectionsOf: async (nodeId) => {
      const admin = new Redis(redis.url);
      try {
        const ids = connectionIds((await admin.client('LIST')) as string, nodeId);
        for (const id of ids) await admin.client('KILL', 'ID', id);
        return ids.length;
      } finally {
        admin.disconnect();
      }
    },
  };
}

function redisCluster(): Backend {
  let cluster: RedisClusterHandle;
  return {
    name: 'Redis Cluster (3 masters + 3 replicas)',
    kind: 'cluster',
    get cluster() {
      return cluster;
    },
    start: async () => {
      cluster = await startRedisCluster({ masters: 3, replicas: 1 });
    },
    // A node's liveness key must outlast a failover of its shard (cluster-node-timeout 1 s + election).
    env: () => ({ REDIS_CLUSTER_NODES: cluster.nodeList, OCPP_NODE_TTL_MS: '5000' }),
    // The whole cluster down and up again without its data (nodes.conf kept): a power cut.
    stop: () => cluster.stopAll(),
    restart: () => cluster.startAll(),
    killConnectionsOf: async (nodeId) => {
      let killed = 0;
      for (const server of cluster.running) {
        for (const id of connectionIds(server.cli('CLIENT', 'LIST'), nodeId)) {
          server.cli('CLIENT', 'KILL', 'ID', id);
          killed++;
        }
      }
      return killed;
    },
  };
}

function nats(): Backend {
  let server: NatsServer;
  return {
    name: 'NATS JetStream',
    kind: 'nats',
    start: async () => {
      server = await startNatsServer();
    },
    env: () => ({ NATS_URL: server.url, OCPP_NODE_TTL_MS: '2000' }),
    stop: () => server.stop(),
    // Back without its store: every stream, bucket and presence entry is gone, as Redis comes back empty.
    restart: () => server.restart({ wipe: true }),
  };
}

describe.each([{ backend: standalone() }, { backend: redisCluster() }, { backend: nats() }])('cluster over $backend.name (separate node processes)', ({ backend }) => {
  let a: CsmsProcess;
  let b: CsmsProcess;
  const processes: CsmsProcess[] = [];
  const clients: RpcClient[] = [];

  async function node(nodeId: string): Promise<CsmsProcess> {
    const csms = await CsmsProcess.start(nodeId, { ...NODE_ENV, ...backend.env() });
    processes.push(csms);
    return csms;
  }

  async function charger(csms: CsmsProcess, identity: string, protocols = ['ocpp1.6']): Promise<RpcClient> {
    try {
      const client = await connectedChargePoint(csms.wsUrl, identity, { protocols });
      clients.push(client);
      return client;
    } catch (error) {
      // No retry: a refusal outside an outage is a finding. Outage tests measure theirs (refusalWindow).
      const acceptance = csms.output.join('').split('\n').filter((line) => /refusing new charge points|accepting new charge points/.test(line));
      throw new Error(
        `${identity} could not connect to ${csms.nodeId}: ${(error as Error).message}\n--- ${csms.nodeId} acceptance log ---\n` +
          `${acceptance.slice(-5).join('\n')}\n--- ${csms.nodeId} log tail ---\n${csms.output.join('').slice(-4000)}`,
        { cause: error },
      );
    }
  }

  /**
   * After a fault: connects `identity` to `csms` while the node still refuses (503), and asserts
   * the refusals ended well within REFUSAL_BOUND_MS of the fault's end.
   */
  async function chargerAfterFault(csms: CsmsProcess, identity: string, faultEndedAt: number): Promise<RpcClient> {
    const { client, window } = await connectExpectingRefusalWindow(csms.wsUrl, identity, { faultEndedAt });
    clients.push(client);
    if (window.refusals > 0) console.log(`${csms.nodeId} refused ${identity} ${window.refusals} times, ${window.firstRefusalMs}–${window.lastRefusalMs} ms after the fault ended`);
    expect(window.lastRefusalMs ?? 0).toBeLessThan(REFUSAL_BOUND_MS);
    return client;
  }

  async function ownerOf(csms: CsmsProcess, identity: string): Promise<string | undefined> {
    const { status, body } = await csms.http('GET', `/chargers/${encodeURIComponent(identity)}`);
    return status === 200 ? body.nodeId : undefined;
  }

  beforeAll(async () => {
    await backend.start();
    [a, b] = await Promise.all([node('node-a'), node('node-b')]);
  }, 60_000);

  afterAll(async () => {
    if (process.env.DEBUG_NODES) for (const csms of processes) console.log(csms.nodeId, csms.output.join('').slice(-3000));
    await Promise.all(clients.map((client) => client.close({ force: true }).catch(() => undefined)));
    await Promise.all(processes.map((csms) => csms.kill9().catch(() => undefined)));
    await stopAllRedisServers();
    await stopAllNatsServers();
  });

  it('returns the reply and the CALLERROR of a charge point on another node', async () => {
    const cp = await charger(b, 'X-REPLY');
    cp.handle('Reset', ({ params }) => ({ status: params.type === 'Soft' ? 'Accepted' : 'Rejected' }));
    cp.handle('UnlockConnector', () => {
      throw createRPCError('NotSupported', 'no locks on this model', { model: 'M1' });
    });
    await waitFor('node A to see X-REPLY on node B', async () => (await ownerOf(a, 'X-REPLY')) === 'node-b');

    expect(await a.http('POST', '/chargers/X-REPLY/calls/Reset', { type: 'Soft' })).toEqual({
      status: 200,
      body: { result: { status: 'Accepted' } },
    });
    expect(await a.http('POST', '/chargers/X-REPLY/calls/UnlockConnector', { connectorId: 1 })).toEqual({
      status: 502,
      body: { error: 'CallError', errorCode: 'NotSupported', errorDescription: 'no locks on this model', errorDetails: { model: 'M1' } },
    });
    expect(await a.http('POST', '/chargers/X-REPLY/calls/Reset', { type: 'Diagonal' })).toMatchObject({
      status: 400,
      body: { error: 'ValidationError' },
    });
    expect((await a.http('POST', '/chargers/NOWHERE/calls/Reset', { type: 'Soft' })).status).toBe(404);
  });

  it('lists the chargers of both nodes on either node', async () => {
    await charger(a, 'LIST-A');
    await charger(b, 'LIST-B', ['ocpp2.0.1']);
    for (const csms of [a, b]) {
      await waitFor(`${csms.nodeId} to list both nodes' chargers`, async () => {
        const { body } = await csms.http('GET', '/chargers');
        const byIdentity = new Map(body.map((c: any) => [c.identity, c]));
        return (byIdentity.get('LIST-A') as any)?.nodeId === 'node-a' && (byIdentity.get('LIST-B') as any)?.nodeId === 'node-b';
      });
    }
    const { body } = await a.http('GET', '/chargers/LIST-B');
    expect(body).toEqual({ identity: 'LIST-B', protocol: 'ocpp2.0.1', nodeId: 'node-b', connectedAt: expect.any(String) });
  });

  it('never sends a command to the charge point after its deadline', async () => {
    const cp = await charger(b, 'X-DEADLINE');
    const received: string[] = [];
    cp.handle('GetConfiguration', () => {
      received.push('GetConfiguration');
      return new Promise(() => undefined); // holds the one in-flight slot until it times out
    });
    cp.handle('Reset', () => {
      received.push('Reset');
      return { status: 'Accepted' };
    });
    await waitFor('presence of X-DEADLINE', async () => (await ownerOf(a, 'X-DEADLINE')) === 'node-b');

    const first = a.http('POST', '/chargers/X-DEADLINE/calls/GetConfiguration?timeoutMs=2500', {});
    await waitFor('the first call to arrive', () => received.includes('GetConfiguration'));
    // Queued behind the first on node B; its deadline passes while it waits.
    const second = await a.http('POST', '/chargers/X-DEADLINE/calls/Reset?timeoutMs=500', { type: 'Soft' });
    expect(second).toMatchObject({ status: 504, body: { error: 'Timeout', sent: false } });
    expect(await first).toMatchObject({ status: 504, body: { error: 'Timeout' } });
    await sleep(1_000); // the slot is free now: a late send would happen here
    expect(received).toEqual(['GetConfiguration']);
    // The charge point still works for calls within their deadline.
    expect((await a.http('POST', '/chargers/X-DEADLINE/calls/Reset', { type: 'Soft' })).status).toBe(200);
  });

  it('newest connection wins across nodes: the stale socket on the old node is closed', async () => {
    const old = await charger(a, 'X-DUP');
    const oldClosed = new Promise<{ code: number }>((resolve) => old.once('close', resolve));
    await waitFor('X-DUP on node A', async () => (await ownerOf(b, 'X-DUP')) === 'node-a');
    const fresh = await charger(b, 'X-DUP');
    fresh.handle('Reset', () => ({ status: 'Accepted' }));
    expect((await oldClosed).code).toBe(1000);
    await waitFor('node A to see X-DUP on node B', async () => (await ownerOf(a, 'X-DUP')) === 'node-b');
    expect(await a.http('POST', '/chargers/X-DUP/calls/Reset', { type: 'Soft' })).toMatchObject({ status: 200 });
  });

  // NATS 2.9 has no way to kick one client's connections; its restart and kill -9 faults are below.
  if (backend.killConnectionsOf) it('recovers when Redis kills one node\'s connections (CLIENT KILL)', async () => {
    const cp = await charger(b, 'X-KILL');
    cp.handle('Reset', () => ({ status: 'Accepted' }));
    const back = await charger(a, 'X-KILL-A');
    back.handle('Reset', () => ({ status: 'Accepted' }));
    await waitFor('presence of X-KILL', async () => (await ownerOf(a, 'X-KILL')) === 'node-b');
    expect(await backend.killConnectionsOf!('node-b')).toBeGreaterThanOrEqual(3); // writer, subscriber, blocking reader
    const faultEndedAt = Date.now();
    await waitFor('A → B to work again', async () => (await a.http('POST', '/chargers/X-KILL/calls/Reset', { type: 'Soft' })).status === 200);
    await waitFor('B → A to work again', async () => (await b.http('POST', '/chargers/X-KILL-A/calls/Reset', { type: 'Soft' })).status === 200);
    // Both nodes take upgrades again soon after, and report ready: the next tests connect to both.
    for (const csms of [a, b]) await chargerAfterFault(csms, `X-KILL-PROBE-${csms.nodeId}`, faultEndedAt);
    for (const csms of [a, b]) {
      await waitFor(`${csms.nodeId} to be ready again`, async () => (await csms.http('GET', '/health')).status === 200, { timeoutMs: 20_000 });
    }
  });

  it(`after a ${backend.kind === 'nats' ? 'NATS (store lost)' : 'Redis'} restart presence comes back whole and never points at a stale owner`, async () => {
    // The ocpp-ws-io scenario: X-MOVED holds a socket on A with a high epoch; Redis restarts empty;
    // X-MOVED connects again on B as soon as B takes upgrades (its old socket on A still looks open).
    // When A re-registers its sockets, it must not take X-MOVED back from B.
    for (let i = 0; i < 3; i++) {
      const churn = await charger(a, 'X-MOVED');
      await churn.close();
    }
    const onA = await charger(a, 'X-MOVED');
    const staleClosed = new Promise<{ code: number }>((resolve) => onA.once('close', resolve));
    await charger(a, 'X-STAY-A');
    const stayB = await charger(b, 'X-STAY-B');
    stayB.handle('Reset', () => ({ status: 'Accepted' }));
    await waitFor('X-MOVED on A', async () => (await ownerOf(b, 'X-MOVED')) === 'node-a');

    await backend.stop();
    try {
      // While Redis is away, new upgrades are refused (503) so charge points go to healthy nodes.
      await expect(connectedChargePoint(b.wsUrl, 'X-DURING-OUTAGE')).rejects.toThrow(/Service Unavailable|503/);
      // ...and the node says why in its log, once.
      const refusal = /refusing new charge points with 503: cluster transport unavailable \(.+\)/;
      await waitFor('node B to log why it refuses charge points', () => refusal.test(b.output.join('')));
    } finally {
      await backend.restart();
    }
    const faultEndedAt = Date.now();
    // X-MOVED connects to B as soon as B takes upgrades again.
    const onB = await chargerAfterFault(b, 'X-MOVED', faultEndedAt);
    onB.handle('Reset', () => ({ status: 'Accepted' }));

    for (const csms of [a, b]) {
      await waitFor(
        `${csms.nodeId} to see presence rebuilt`,
        async () =>
          (await ownerOf(csms, 'X-MOVED')) === 'node-b' &&
          (await ownerOf(csms, 'X-STAY-A')) === 'node-a' &&
          (await ownerOf(csms, 'X-STAY-B')) === 'node-b',
        { timeoutMs: 20_000 },
      );
    }
    expect((await staleClosed).code).toBe(1000);
    expect(await a.http('POST', '/chargers/X-MOVED/calls/Reset', { type: 'Soft' })).toMatchObject({ status: 200 });
    expect(await a.http('POST', '/chargers/X-STAY-B/calls/Reset', { type: 'Soft' })).toMatchObject({ status: 200 });
    // And it stays that way (ocpp-ws-io flips back to the stale owner for ~100 s).
    await sleep(2_500);
    expect(await ownerOf(a, 'X-MOVED')).toBe('node-b');
    // Node A takes upgrades again too (the next tests connect to it).
    await chargerAfterFault(a, 'X-RESTART-PROBE-A', faultEndedAt);
  }, 60_000);

  it('a second live process with the same node id refuses to start', async () => {
    await expect(CsmsProcess.start('node-a', { ...NODE_ENV, ...backend.env() })).rejects.toThrow(/node-a.*(held|live|in use)/is);
  });

  it('kill -9 of a node: callers are answered early, and calls work once the charger reconnects elsewhere', async () => {
    const c = await node('node-c');
    const victim = await charger(c, 'X-VICTIM');
    victim.handle('GetConfiguration', () => new Promise(() => undefined));
    await waitFor('X-VICTIM on C', async () => (await ownerOf(a, 'X-VICTIM')) === 'node-c');

    // In flight on C when it dies; the timeout is far away.
    const inFlight = a.http('POST', '/chargers/X-VICTIM/calls/GetConfiguration?timeoutMs=60000', {});
    await sleep(300);
    await c.kill9();
    // Queued for C after it died.
    const afterDeath = a.http('POST', '/chargers/X-VICTIM/calls/GetConfiguration?timeoutMs=60000', {});

    // NotConnected (from the takeover or from presence), not a Timeout after 60 s.
    // It was on C's socket when C died: the charge point may have received it, and the answer says so.
    expect(await inFlight).toMatchObject({ status: 404, body: { error: 'NotConnected', maybeDelivered: true } });
    expect(await afterDeath).toMatchObject({ status: 404, body: { error: 'NotConnected', maybeDelivered: false } });
    await waitFor('presence of the dead node to go', async () => (await ownerOf(a, 'X-VICTIM')) === undefined, { timeoutMs: 20_000 });

    await victim.close({ force: true });
    const again = await charger(b, 'X-VICTIM');
    again.handle('GetConfiguration', () => ({ configurationKey: [] }));
    await waitFor('X-VICTIM on B', async () => (await ownerOf(a, 'X-VICTIM')) === 'node-b');
    expect(await a.http('POST', '/chargers/X-VICTIM/calls/GetConfiguration', {})).toEqual({
      status: 200,
      body: { result: { configurationKey: [] } },
    });
  }, 60_000);

  it('broadcast and broadcastBatch reach charge points on three nodes', async () => {
    const c = await node('node-c2');
    const targets: Array<[CsmsProcess, string]> = [
      [a, 'BC-A1'],
      [a, 'BC-A2'],
      [b, 'BC-B1'],
      [c, 'BC-C1'],
      [c, 'BC-C2'],
    ];
    const got = new Map<string, number>();
    for (const [csms, identity] of targets) {
      const cp = await charger(csms, identity);
      cp.handle('DataTransfer', ({ params }) => {
        got.set(identity, (got.get(identity) ?? 0) + 1);
        return { status: 'Accepted', data: `${identity}:${params.data}` };
      });
    }
    await waitFor('all broadcast targets in presence', async () => {
      const { body } = await b.http('GET', '/chargers');
      return targets.every(([, identity]) => body.some((charger: any) => charger.identity === identity));
    });

    const batch = await b.http('POST', '/broadcast-batch/DataTransfer', {
      identities: [...targets.map(([, identity]) => identity), 'BC-MISSING'],
      payload: { vendorId: 'bench', data: 'batch' },
    });
    expect(batch.status).toBe(200);
    for (const [, identity] of targets) {
      expect(batch.body).toContainEqual({ identity, status: 'fulfilled', result: { status: 'Accepted', data: `${identity}:batch` } });
    }
    expect(batch.body).toContainEqual({ identity: 'BC-MISSING', status: 'rejected', error: expect.objectContaining({ error: 'NotConnected' }) });

    got.clear();
    const broadcast = await c.http('POST', '/broadcast/DataTransfer', { vendorId: 'bench', data: 'all' });
    expect(broadcast.status).toBe(200);
    for (const [, identity] of targets) expect(got.get(identity)).toBe(1);
    // Charge points of earlier tests are connected too (some without a DataTransfer handler).
    expect(broadcast.body.delivered).toBeGreaterThanOrEqual(targets.length);
    expect(broadcast.body.nodes).toBe(3);
    await c.stop();
  }, 60_000);
  if (backend.kind === 'cluster') {
    const keys = new RedisKeys();

    /** Calls A → a charge point on B, one after the other, until stopped. */
    function callLoop(identity: string) {
      const statuses: number[] = [];
      let running = true;
      const done = (async () => {
        for (let i = 0; running; i++) {
          const { status } = await a.http('POST', `/chargers/${identity}/calls/DataTransfer?timeoutMs=5000`, { vendorId: 'e2e', data: String(i) });
          statuses.push(status);
        }
      })();
      return {
        statuses,
        stop: async () => {
          running = false;
          await done;
        },
      };
    }

    it('a master killed while calls run: its replica takes over, calls fail clearly at worst, then succeed', async () => {
      const cluster = backend.cluster!;
      // Charge points on B whose presence entries live on every master.
      const others = ['X-FO-1', 'X-FO-2', 'X-FO-3', 'X-FO-4', 'X-FO-5', 'X-FO-6'];
      expect(new Set(others.map((identity) => cluster.masterOf(keySlot(keys.presence(identity))))).size).toBe(3);
      for (const identity of ['X-FAILOVER', ...others]) {
        const cp = await charger(b, identity);
        cp.handle('DataTransfer', ({ params }) => ({ status: 'Accepted', data: params.data }));
        await waitFor(`${identity} on B`, async () => (await ownerOf(a, identity)) === 'node-b');
      }
      const calls = callLoop('X-FAILOVER');
      await waitFor('calls to flow', () => calls.statuses.length >= 5);

      // The master of node B's inbox and liveness key.
      const victim = cluster.masterOf(keySlot(keys.stream('node-b')));
      await cluster.killMaster(victim);
      const switched = calls.statuses.length;
      await waitFor('calls to succeed after the switch', () => calls.statuses.slice(switched).filter((status) => status === 200).length >= 10, {
        timeoutMs: 30_000,
      });
      await calls.stop();
      // OK, or during the switch Unavailable (503) / Timeout (504): never a wrong answer such as NotConnected.
      expect(calls.statuses.filter((status) => ![200, 503, 504].includes(status))).toEqual([]);
      expect(calls.statuses.slice(-5)).toEqual([200, 200, 200, 200, 200]);
      // Presence was neither lost nor left stale: every charge point still on B, and reachable.
      for (const identity of ['X-FAILOVER', ...others]) {
        for (const csms of [a, b]) expect(await ownerOf(csms, identity)).toBe('node-b');
        expect((await a.http('POST', `/chargers/${identity}/calls/DataTransfer`, { vendorId: 'e2e' })).status).toBe(200);
      }
      await cluster.restartNode(victim); // back as a replica, for what follows
      const faultEndedAt = Date.now();
      for (const csms of [a, b]) await chargerAfterFault(csms, `X-FO-PROBE-${csms.nodeId}`, faultEndedAt);
    }, 90_000);

    it('slots migrating and a reshard while calls run: every call succeeds', async () => {
      const cluster = backend.cluster!;
      const cp = await charger(b, 'X-RESHARD');
      cp.handle('DataTransfer', ({ params }) => ({ status: 'Accepted', data: params.data }));
      await waitFor('X-RESHARD on B', async () => (await ownerOf(a, 'X-RESHARD')) === 'node-b');
      const calls = callLoop('X-RESHARD');
      await waitFor('calls to flow', () => calls.statuses.length >= 5);

      // Both inboxes, the charge point's presence and the node registry change masters, key by key.
      const slots = [...new Set([keys.stream('node-a'), keys.stream('node-b'), keys.presence('X-RESHARD'), keys.registry].map(keySlot))];
      for (const slot of slots) {
        const target = cluster.masters().find((master) => master !== cluster.masterOf(slot))!;
        await cluster.migrateSlots([slot], target, { keysPerBatch: 1, pauseMs: 50 });
      }
      // And an operator's reshard of many slots.
      const [from, to] = cluster.masters();
      await cluster.reshard(from, to, 500);
      const moved = calls.statuses.length;
      await waitFor('calls after the reshard', () => calls.statuses.length >= moved + 10);
      await calls.stop();
      expect(calls.statuses.filter((status) => status !== 200)).toEqual([]);
      expect(await ownerOf(a, 'X-RESHARD')).toBe('node-b');
    }, 90_000);
  }
});
