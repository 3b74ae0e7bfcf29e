import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { connectedChargePoint, createRPCError } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { CsmsProcess } from '../support/csms-process.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import type { RedisServer } from '../support/redis-server.js';
import { sleep, waitFor } from '../support/wait.js';

/**
 * The cluster contract end to end: sample CSMS nodes as separate processes on one real Redis,
 * ocpp-rpc RPCClients as charge points.
 */

const NODE_ENV = { OCPP_NODE_TTL_MS: '2000', OCPP_CALL_TIMEOUT_MS: '20000' };

describe('cluster over Redis (separate node processes)', () => {
  let redis: RedisServer;
  let a: CsmsProcess;
  let b: CsmsProcess;
  const processes: CsmsProcess[] = [];
  const clients: RpcClient[] = [];

  async function node(nodeId: string): Promise<CsmsProcess> {
    const csms = await CsmsProcess.start(nodeId, { ...NODE_ENV, REDIS_URL: redis.url });
    processes.push(csms);
    return csms;
  }

  async function charger(csms: CsmsProcess, identity: string, protocols = ['ocpp1.6']): Promise<RpcClient> {
    const client = await connectedChargePoint(csms.wsUrl, identity, { protocols });
    clients.push(client);
    return client;
  }

  async function ownerOf(csms: CsmsProcess, identity: string): Promise<string | undefined> {
    const { status, body } = await csms.http('GET', `/chargers/${encodeURIComponent(identity)}`);
    return status === 200 ? body.nodeId : undefined;
  }

  beforeAll(async () => {
    redis = await startRedisServer();
    [a, b] = await Promise.all([node('node-a'), node('node-b')]);
  });

  afterAll(async () => {
    if (process.env.DEBUG_NODES) for (const csms of processes) console.log(csms.nodeId, csms.output.join('').slice(-3000));
    await Promise.all(clients.map((client) => client.close({ force: true }).catch(() => undefined)));
    await Promise.all(processes.map((csms) => csms.kill9().catch(() => undefined)));
    await stopAllRedisServers();
  });

  it('returns the reply and the CALLERROR of a charge point on another node', async () => {
    const cp = await charger(b, 'X-REPLY');
    cp.handle('Reset', ({ params }) => ({ status: params.type === 'Soft' ? 'Accepted' : 'Rejected' }));
    cp.handle('UnlockConnector', () => {
      throw createRPCError('NotSupported', 'no locks on this model', { model: 'M1' });
    });
    await waitFor(async () => (await ownerOf(a, 'X-REPLY')) === 'node-b', 'node A to see X-REPLY on node B');

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
      await waitFor(async () => {
        const { body } = await csms.http('GET', '/chargers');
        const byIdentity = new Map(body.map((c: any) => [c.identity, c]));
        return (byIdentity.get('LIST-A') as any)?.nodeId === 'node-a' && (byIdentity.get('LIST-B') as any)?.nodeId === 'node-b';
      }, `${csms.nodeId} to list both nodes' chargers`);
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
    await waitFor(async () => (await ownerOf(a, 'X-DEADLINE')) === 'node-b', 'presence of X-DEADLINE');

    const first = a.http('POST', '/chargers/X-DEADLINE/calls/GetConfiguration?timeoutMs=2500', {});
    await waitFor(() => received.includes('GetConfiguration'), 'the first call to arrive');
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
    await waitFor(async () => (await ownerOf(b, 'X-DUP')) === 'node-a', 'X-DUP on node A');
    const fresh = await charger(b, 'X-DUP');
    fresh.handle('Reset', () => ({ status: 'Accepted' }));
    expect((await oldClosed).code).toBe(1000);
    await waitFor(async () => (await ownerOf(a, 'X-DUP')) === 'node-b', 'node A to see X-DUP on node B');
    expect(await a.http('POST', '/chargers/X-DUP/calls/Reset', { type: 'Soft' })).toMatchObject({ status: 200 });
  });

  it('recovers when Redis kills one node\'s connections (CLIENT KILL)', async () => {
    const cp = await charger(b, 'X-KILL');
    cp.handle('Reset', () => ({ status: 'Accepted' }));
    const back = await charger(a, 'X-KILL-A');
    back.handle('Reset', () => ({ status: 'Accepted' }));
    await waitFor(async () => (await ownerOf(a, 'X-KILL')) === 'node-b', 'presence of X-KILL');
    const admin = new Redis(redis.url);
    try {
      const list = (await admin.client('LIST')) as string;
      const ids = list
        .split('\n')
        .filter((line) => /name=ocpp-cluster:node-b/.test(line))
        .map((line) => /id=(\d+)/.exec(line)![1]);
      expect(ids.length).toBeGreaterThanOrEqual(3); // writer, subscriber, blocking reader
      for (const id of ids) await admin.client('KILL', 'ID', id);
    } finally {
      admin.disconnect();
    }
    await waitFor(async () => (await a.http('POST', '/chargers/X-KILL/calls/Reset', { type: 'Soft' })).status === 200, 'A → B to work again');
    await waitFor(async () => (await b.http('POST', '/chargers/X-KILL-A/calls/Reset', { type: 'Soft' })).status === 200, 'B → A to work again');
  });

  it('after a Redis restart presence comes back whole and never points at a stale owner', async () => {
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
    await waitFor(async () => (await ownerOf(b, 'X-MOVED')) === 'node-a', 'X-MOVED on A');

    await redis.stop();
    try {
      // While Redis is away, new upgrades are refused (503) so charge points go to healthy nodes.
      await expect(connectedChargePoint(b.wsUrl, 'X-DURING-OUTAGE')).rejects.toThrow(/Service Unavailable|503/);
    } finally {
      await redis.start();
    }
    let onB: RpcClient | undefined;
    await waitFor(async () => {
      onB = await connectedChargePoint(b.wsUrl, 'X-MOVED').catch(() => undefined);
      return onB !== undefined;
    }, 'node B to take upgrades again', { timeoutMs: 20_000 });
    clients.push(onB!);
    onB!.handle('Reset', () => ({ status: 'Accepted' }));

    for (const csms of [a, b]) {
      await waitFor(
        async () =>
          (await ownerOf(csms, 'X-MOVED')) === 'node-b' &&
          (await ownerOf(csms, 'X-STAY-A')) === 'node-a' &&
          (await ownerOf(csms, 'X-STAY-B')) === 'node-b',
        `${csms.nodeId} to see presence rebuilt`,
        { timeoutMs: 20_000 },
      );
    }
    expect((await staleClosed).code).toBe(1000);
    expect(await a.http('POST', '/chargers/X-MOVED/calls/Reset', { type: 'Soft' })).toMatchObject({ status: 200 });
    expect(await a.http('POST', '/chargers/X-STAY-B/calls/Reset', { type: 'Soft' })).toMatchObject({ status: 200 });
    // And it stays that way (ocpp-ws-io flips back to the stale owner for ~100 s).
    await sleep(2_500);
    expect(await ownerOf(a, 'X-MOVED')).toBe('node-b');
  }, 60_000);

  it('a second live process with the same node id refuses to start', async () => {
    await expect(CsmsProcess.start('node-a', { ...NODE_ENV, REDIS_URL: redis.url })).rejects.toThrow(/node-a.*(held|live|in use)/is);
  });

  it('kill -9 of a node: callers are answered early, and calls work once the charger reconnects elsewhere', async () => {
    const c = await node('node-c');
    const victim = await charger(c, 'X-VICTIM');
    victim.handle('GetConfiguration', () => new Promise(() => undefined));
    await waitFor(async () => (await ownerOf(a, 'X-VICTIM')) === 'node-c', 'X-VICTIM on C');

    // In flight on C when it dies; the timeout is far away.
    const inFlight = a.http('POST', '/chargers/X-VICTIM/calls/GetConfiguration?timeoutMs=60000', {});
    await sleep(300);
    await c.kill9();
    // Queued for C after it died.
    const afterDeath = a.http('POST', '/chargers/X-VICTIM/calls/GetConfiguration?timeoutMs=60000', {});

    // NotConnected (from the takeover or from presence), not a Timeout after 60 s.
    expect(await inFlight).toMatchObject({ status: 404, body: { error: 'NotConnected' } });
    expect(await afterDeath).toMatchObject({ status: 404, body: { error: 'NotConnected' } });
    await waitFor(async () => (await ownerOf(a, 'X-VICTIM')) === undefined, 'presence of the dead node to go');

    await victim.close({ force: true });
    const again = await charger(b, 'X-VICTIM');
    again.handle('GetConfiguration', () => ({ configurationKey: [] }));
    await waitFor(async () => (await ownerOf(a, 'X-VICTIM')) === 'node-b', 'X-VICTIM on B');
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
    await waitFor(async () => {
      const { body } = await b.http('GET', '/chargers');
      return targets.every(([, identity]) => body.some((charger: any) => charger.identity === identity));
    }, 'all broadcast targets in presence');

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
});
