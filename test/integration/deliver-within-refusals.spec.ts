import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Redis } from 'ioredis';
import { InMemoryAdapter, InvalidOptionsError, NotDeliveredError, UnsupportedByTransportError } from '../../lib/index.js';
import { startModuleApp } from '../support/ocpp-test-app.js';
import type { TestApp } from '../support/ocpp-test-app.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import { userPubSubAdapter } from '../support/user-pubsub-transport.js';

/** `deliverWithinMs` is never silently ignored: refused where it cannot hold, typed. */
describe('deliverWithinMs refusals', () => {
  const clients: Redis[] = [];
  let seedTransport: TestApp;
  let inMemory: TestApp;

  beforeAll(async () => {
    const redis = await startRedisServer();
    seedTransport = await startModuleApp({ nodeId: 'dwr-seed', adapter: userPubSubAdapter(redis.url, clients) });
    inMemory = await startModuleApp({ nodeId: 'dwr-memory', adapter: new InMemoryAdapter() });
  });

  afterAll(async () => {
    await seedTransport?.close();
    await inMemory?.close();
    await stopAllRedisServers();
  });

  it('a transport without a parked-command store refuses it with UnsupportedByTransportError', async () => {
    const call = seedTransport.service.sendRaw('OFFLINE', undefined, 'Reset', { type: 'Hard' }, { deliverWithinMs: 5_000 });
    await expect(call).rejects.toBeInstanceOf(UnsupportedByTransportError);
    await expect(call).rejects.toMatchObject({ code: 'OCPP_UNSUPPORTED_BY_TRANSPORT', transport: 'user-pubsub', feature: 'deliverWithinMs' });
  });

  it('a bad window, or one on a call that cannot wait, is an InvalidOptionsError', async () => {
    const { service } = inMemory;
    for (const deliverWithinMs of [0, -1, 1.5, 86_400_001, Number.NaN]) {
      await expect(service.sendRaw('OFFLINE', undefined, 'Reset', { type: 'Hard' }, { deliverWithinMs })).rejects.toMatchObject({
        option: 'deliverWithinMs',
      });
    }
    await expect(service.broadcastRaw(undefined, 'Reset', { type: 'Hard' }, { deliverWithinMs: 1_000 })).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(service.broadcastBatchRaw(['OFFLINE'], 'Reset', { type: 'Hard' }, { deliverWithinMs: 1_000 })).rejects.toBeInstanceOf(InvalidOptionsError);
  });

  it('in memory, a charger that stays offline through the window gets NotDeliveredError', async () => {
    const call = inMemory.service.sendRaw('OFFLINE', undefined, 'Reset', { type: 'Hard' }, { deliverWithinMs: 300 });
    await expect(call).rejects.toBeInstanceOf(NotDeliveredError);
    await expect(call).rejects.toMatchObject({ identity: 'OFFLINE', deliverWithinMs: 300, sent: false });
  });
});
