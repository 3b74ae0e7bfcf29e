import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createDriver } from '../../lib/index.js';
import { connectedChargePoint } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { CsmsProcess } from '../support/csms-process.js';
import { startModuleApp } from '../support/ocpp-test-app.js';
import type { TestApp } from '../support/ocpp-test-app.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import type { RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

describe('per-target ordering with a pool of 4 writer connections', () => {
  let redis: RedisServer;
  let owner: CsmsProcess;
  let caller: TestApp;
  let cp: RpcClient | undefined;

  beforeAll(async () => {
    redis = await startRedisServer();
    owner = await CsmsProcess.start('order-owner', { REDIS_URL: redis.url, OCPP_NODE_TTL_MS: '2000' });
    caller = await startModuleApp({
      nodeId: 'order-caller',
      redis: { url: redis.url, poolSize: 4, driverFactory: () => createDriver({ url: redis.url }) },
    });
  });

  afterAll(async () => {
    await cp?.close({ force: true }).catch(() => undefined);
    await caller?.close();
    await owner?.kill9();
    await stopAllRedisServers();
  });

  it('delivers commands from one origin to one charge point in the order they were made', async () => {
    cp = await connectedChargePoint(owner.wsUrl, 'ORDERED');
    const seen: number[] = [];
    cp.handle('DataTransfer', ({ params }) => {
      seen.push(Number(params.data));
      return { status: 'Accepted' };
    });
    await waitFor('presence of ORDERED', async () => (await caller.service.getPresence('ORDERED'))?.nodeId === 'order-owner');

    const count = 100; // the owner's queue bound (maxQueueSize)
    const calls = Array.from({ length: count }, (_, i) =>
      caller.service.sendToClient('ORDERED', 'DataTransfer', { vendorId: 'order', data: String(i) }),
    );
    const results = await Promise.allSettled(calls);
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(seen).toEqual(Array.from({ length: count }, (_, i) => i));
  });
});
