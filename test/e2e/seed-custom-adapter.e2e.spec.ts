import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { connectedChargePoint, type RpcClient } from '../support/charge-point.js';
import { userPubSubAdapter } from '../support/user-pubsub-transport.js';
import { startModuleApp, type TestApp } from '../support/ocpp-test-app.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { waitFor, withTimeout } from '../support/wait.js';

describe('a seed-shaped custom adapter (defineAdapter) runs a two-node cluster', () => {
  let redis: RedisServer;
  let observer: Redis;
  const clients: Redis[] = [];
  let nodeA: TestApp;
  let nodeB: TestApp;
  const chargers: RpcClient[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
    observer = new Redis(redis.url);
    nodeA = await startModuleApp({ nodeId: 'seed-a', pingIntervalMs: 0, adapter: userPubSubAdapter(redis.url, clients) });
    nodeB = await startModuleApp({ nodeId: 'seed-b', pingIntervalMs: 0, adapter: userPubSubAdapter(redis.url, clients) });
  });

  afterAll(async () => {
    for (const charger of chargers) await charger.close({ force: true }).catch(() => undefined);
    await nodeA?.close();
    await nodeB?.close();
    observer?.disconnect();
    for (const client of clients) client.disconnect();
    await stopAllRedisServers();
  });

  it('routes a command from node A to a charge point on node B and back', async () => {
    const charger = await connectedChargePoint(nodeB.wsUrl, 'SEED-CP-1');
    chargers.push(charger);
    charger.handle('Reset', ({ params }) => ({ status: params.type === 'Hard' ? 'Accepted' : 'Rejected' }));
    await waitFor('node A to learn the owner', async () => (await nodeA.service.getPresence('SEED-CP-1'))?.nodeId === 'seed-b');

    const answer = await withTimeout(nodeA.service.sendToClient('SEED-CP-1', 'ocpp1.6', 'Reset', { type: 'Hard' }), 10_000, 'the answer');
    expect(answer).toEqual({ status: 'Accepted' });
    // The user's own presence store names the owner too.
    expect(await observer.get('presence:SEED-CP-1')).toBe('seed-b');
  });

  it('reaches every node with a broadcast', async () => {
    const onA = await connectedChargePoint(nodeA.wsUrl, 'SEED-CP-2');
    chargers.push(onA);
    const seen: string[] = [];
    onA.handle('ClearCache', () => (seen.push('SEED-CP-2'), { status: 'Accepted' }));
    chargers[0]!.handle('ClearCache', () => (seen.push('SEED-CP-1'), { status: 'Accepted' }));
    await waitFor('node B to learn the owner', async () => (await nodeB.service.getPresence('SEED-CP-2'))?.nodeId === 'seed-a');

    const summary = await nodeB.service.broadcast('ClearCache', {}, { timeoutMs: 10_000 });
    expect(summary).toMatchObject({ delivered: 2, failed: 0, nodes: 2 });
    expect(seen.sort()).toEqual(['SEED-CP-1', 'SEED-CP-2']);
  });

  it('lets the newest connection win: the stale socket on the other node is closed', async () => {
    const first = chargers[0]!;
    const closedFirst = new Promise<void>((resolve) => first.once('close', () => resolve()));
    const second = await connectedChargePoint(nodeA.wsUrl, 'SEED-CP-1');
    chargers.push(second);
    await withTimeout(closedFirst, 10_000, 'the stale socket on node B to close');
    await waitFor('node B to see the new owner', async () => (await nodeB.service.getPresence('SEED-CP-1'))?.nodeId === 'seed-a');
  });

  it('forgets a node that stopped: its charge points read as not connected', async () => {
    await nodeA.close();
    await waitFor('node B to forget node A', async () => (await nodeB.service.getPresence('SEED-CP-2')) === null);
    await expect(nodeB.service.sendToClient('SEED-CP-2', 'ocpp1.6', 'Reset', { type: 'Hard' })).rejects.toMatchObject({ code: 'OCPP_NOT_CONNECTED' });
  });
});
