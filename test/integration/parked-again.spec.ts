import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { inboxOf } from '../../lib/cluster/address.js';
import type { ClusterMessage, CommandEnvelope } from '../../lib/cluster/envelope.js';
import { RedisAdapter } from '../../lib/index.js';
import { RedisKeys } from '../../lib/redis/redis-keys.js';
import { chargePoint } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { startModuleApp } from '../support/ocpp-test-app.js';
import type { TestApp } from '../support/ocpp-test-app.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import { waitFor, withTimeout } from '../support/wait.js';

/**
 * A parked command a node took for delivery, whose charge point left before it ran: it is parked
 * again (not answered "not connected") and delivered on the next connection — through the same
 * node's inbox again, under the same command id.
 */
describe('a parked command whose charge point left after it was taken', () => {
  let owner: TestApp;
  let caller: RedisAdapter;
  let admin: Redis;
  let client: RpcClient | undefined;
  const replies: ClusterMessage[] = [];

  beforeAll(async () => {
    const redis = await startRedisServer();
    admin = new Redis(redis.url);
    owner = await startModuleApp({ nodeId: 'pa-owner', redis: { url: redis.url } });
    caller = new RedisAdapter({ url: redis.url });
    await caller.connect('pa-caller', { localPresence: () => [] });
    await caller.subscribe('node', (message) => {
      replies.push(message);
    });
  });

  afterAll(async () => {
    await client?.close({ force: true }).catch(() => undefined);
    await caller?.disconnect();
    await owner?.close();
    admin?.disconnect();
    await stopAllRedisServers();
  });

  it('waits for the next connection and is delivered once, answered to its caller', async () => {
    const deliverBy = Date.now() + 30_000;
    const taken: CommandEnvelope = {
      ...{ kind: 'command', id: 'parked-again-1', origin: 'pa-caller', identity: 'PA-1', action: 'DataTransfer' },
      ...{ payload: { vendorId: 'pa', data: 'again' }, deadline: Date.now() + 10_000, parked: { deliverBy, timeoutMs: 10_000 } },
    };
    await caller.publish(inboxOf('pa-owner'), taken);
    const key = new RedisKeys().parked('PA-1');
    await waitFor('the command to be parked again', async () => (await admin.llen(key)) === 1);
    expect(replies).toEqual([]);
    const [item] = await admin.lrange(key, 0, -1);
    expect(JSON.parse(item!.slice(item!.indexOf('{'))).command).toMatchObject({ id: 'parked-again-1', parked: { attempt: 1 } });

    const received: string[] = [];
    client = chargePoint(owner.wsUrl, 'PA-1');
    client.handle('DataTransfer', ({ params }) => {
      received.push(params.data);
      return { status: 'Accepted', data: 'done' };
    });
    await withTimeout(client.connect(), 10_000, 'PA-1 to connect');
    await waitFor('the caller to get the answer', () => replies.length === 1);
    expect(replies[0]).toMatchObject({ kind: 'reply', id: 'parked-again-1', outcome: { status: 'result', payload: { status: 'Accepted', data: 'done' } } });
    expect(received).toEqual(['again']);
    expect(await admin.llen(key)).toBe(0);
  });
});
