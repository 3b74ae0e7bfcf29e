import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connectedChargePoint } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { startModuleApp } from '../support/ocpp-test-app.js';
import type { TestApp } from '../support/ocpp-test-app.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import type { RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

describe("the caller's owner cache when a charge point moves", () => {
  let redis: RedisServer;
  let caller: TestApp;
  let first: TestApp;
  let second: TestApp;
  const clients: RpcClient[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
    // A cache that outlives the whole test: every stale entry below is really used.
    caller = await startModuleApp({ nodeId: 'cache-caller', ownerCacheMs: 3_600_000, redis: { url: redis.url } });
    first = await startModuleApp({ nodeId: 'cache-first', redis: { url: redis.url } });
    second = await startModuleApp({ nodeId: 'cache-second', redis: { url: redis.url } });
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close({ force: true }).catch(() => undefined)));
    for (const app of [caller, first, second]) await app?.close();
    await stopAllRedisServers();
  });

  async function chargerOn(app: TestApp, identity: string, answer: string): Promise<RpcClient> {
    const client = await connectedChargePoint(app.wsUrl, identity);
    clients.push(client);
    client.handle('DataTransfer', () => ({ status: 'Accepted', data: answer }));
    await waitFor(`${identity} on ${app.service.nodeId}`, async () => (await caller.service.getPresence(identity))?.nodeId === app.service.nodeId);
    return client;
  }

  const call = (identity: string) => caller.service.sendToClient(identity, 'DataTransfer', { vendorId: 'cache' });

  it('still reaches the charge point after it reconnects on another node', async () => {
    const old = await chargerOn(first, 'MOVER', 'first');
    expect(await call('MOVER')).toEqual({ status: 'Accepted', data: 'first' });

    const oldClosed = new Promise((resolve) => old.once('close', resolve));
    await chargerOn(second, 'MOVER', 'second');
    await oldClosed;
    const sentByFirst = async () => (await first.service.metrics()).adapter.sent;
    const before = await sentByFirst();
    // The caller still remembers the first node: that node forwards the command to the second.
    expect(await call('MOVER')).toEqual({ status: 'Accepted', data: 'second' });
    // The answer came from another node than remembered, so the caller asks presence again
    // and goes straight to the second node: the first one sent only the forwarded command.
    expect(await call('MOVER')).toEqual({ status: 'Accepted', data: 'second' });
    expect((await sentByFirst()) - before).toBe(1);
  });

  it('answers NotConnected once the charge point is gone, and finds it again when it comes back', async () => {
    const gone = await chargerOn(first, 'LEAVER', 'first');
    expect(await call('LEAVER')).toEqual({ status: 'Accepted', data: 'first' });

    await gone.close();
    await waitFor('LEAVER to leave presence', async () => (await caller.service.getPresence('LEAVER')) === null);
    await expect(call('LEAVER')).rejects.toMatchObject({ code: 'OCPP_NOT_CONNECTED' });

    await chargerOn(second, 'LEAVER', 'second');
    expect(await call('LEAVER')).toEqual({ status: 'Accepted', data: 'second' });
  });
});
