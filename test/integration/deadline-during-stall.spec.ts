import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { OcppTimeoutError } from '../../lib/protocol/errors.js';
import { openAnsweringCharger, openCharger, startClusterNode, type RunningClusterNode } from '../support/cluster-node.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { sleep, waitFor, withTimeout } from '../support/wait.js';

/**
 * A caller is answered at its deadline even while Redis is stalled: routing (a presence read)
 * that Redis holds up must not hold the caller past its timeout, and nothing is sent then.
 */
describe('a call whose routing is held up by a stalled Redis', () => {
  let redis: RedisServer;
  let admin: Redis;
  const nodes: RunningClusterNode[] = [];
  const sockets: WebSocket[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
    admin = new Redis(redis.port);
  });

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.terminate();
    await Promise.all(nodes.splice(0).map((node) => node.stop().catch(() => undefined)));
  });

  afterAll(async () => {
    admin?.disconnect();
    await stopAllRedisServers();
  });

  it('is answered "timed out, not sent" at its deadline while Redis is still paused, and the charger never gets it', async () => {
    const a = await startClusterNode(redis.url, 'stall-a', { adapter: { nodeTtlMs: 5000 }, node: { ownerCacheMs: 0 } });
    const b = await startClusterNode(redis.url, 'stall-b', { adapter: { nodeTtlMs: 5000 } });
    nodes.push(a, b);
    const charger = await openCharger(b.urlOf('DL1'));
    sockets.push(charger);
    const received: string[] = [];
    charger.on('message', (data) => received.push(data.toString()));
    await waitFor('DL1 on stall-b', async () => (await a.node.getPresence('DL1'))?.nodeId === 'stall-b');

    let pauseOver = false;
    await admin.call('CLIENT', 'PAUSE', '6000', 'ALL');
    const pause = sleep(6000).then(() => {
      pauseOver = true;
    });
    const outcome = await withTimeout(
      a.node.sendToClient('DL1', 'ocpp1.6', 'DataTransfer', { vendorId: 'stall' }, { timeoutMs: 500 }).then(
        () => 'answered',
        (error: unknown) => error,
      ),
      15_000,
      'the call to settle',
    );
    // Settled while Redis was still paused (5.5 s of margin), not when it came back.
    expect(pauseOver).toBe(false);
    expect(outcome).toBeInstanceOf(OcppTimeoutError);
    expect((outcome as OcppTimeoutError).sent).toBe(false);
    await pause;
    await sleep(1000);
    expect(received).toEqual([]);
  });

  /** Redis stops taking writes (reads go on) for `ms`; resolves `over` when they are taken again. */
  async function pauseWrites(ms: number): Promise<{ isOver: () => boolean; over: Promise<void> }> {
    let done = false;
    await admin.call('CLIENT', 'PAUSE', String(ms), 'WRITE');
    const over = sleep(ms).then(() => {
      done = true;
    });
    return { isOver: () => done, over };
  }

  describe('with the owner known (no presence read before the publish)', () => {
    let a: RunningClusterNode;
    let b: RunningClusterNode;
    let received: string[];

    beforeEach(async () => {
      a = await startClusterNode(redis.url, 'stall-a', { adapter: { nodeTtlMs: 5000 } });
      b = await startClusterNode(redis.url, 'stall-b', { adapter: { nodeTtlMs: 5000 } });
      nodes.push(a, b);
      const charger = await openAnsweringCharger(b.urlOf('DL2'));
      sockets.push(charger.socket);
      received = charger.received;
      await waitFor('DL2 on stall-b', async () => (await a.node.getPresence('DL2'))?.nodeId === 'stall-b');
      // Answered: A now remembers that B holds DL2.
      await a.node.sendToClient('DL2', 'ocpp1.6', 'DataTransfer', { vendorId: 'warm' });
    });

    it('sendToClient is answered "timed out" at its deadline while the publish waits on Redis, and the charger never gets it', async () => {
      const pause = await pauseWrites(6000);
      const outcome = await withTimeout(
        a.node.sendToClient('DL2', 'ocpp1.6', 'DataTransfer', { vendorId: 'stalled' }, { timeoutMs: 500 }).then(
          () => 'answered',
          (error: unknown) => error,
        ),
        15_000,
        'the call to settle',
      );
      expect(pause.isOver()).toBe(false);
      expect(outcome).toBeInstanceOf(OcppTimeoutError);
      await pause.over;
      await sleep(1000);
      // Appended once Redis woke, past its deadline: B never runs it.
      expect(received.filter((call) => call.includes('stalled'))).toEqual([]);
    });
  });
});
