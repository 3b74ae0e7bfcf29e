import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { WebSocket } from 'ws';
import { NodeShuttingDownError } from '../../lib/protocol/errors.js';
import { openCharger, startClusterNode, type RunningClusterNode } from '../support/cluster-node.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { sleep, waitFor, withTimeout } from '../support/wait.js';

/**
 * A node that stops while its own calls wait in other nodes' inboxes must not tell their callers
 * "failed" (NodeShuttingDownError) while the command can still reach the charge point: it waits
 * for the owner's answer (or the deadline) as long as the transport can carry it.
 */
describe('stopping a node with calls in flight to other nodes', () => {
  let redis: RedisServer;
  const nodes: RunningClusterNode[] = [];
  const sockets: WebSocket[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
  });

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.terminate();
    await Promise.all(nodes.splice(0).map((node) => node.stop().catch(() => undefined)));
  });

  afterAll(async () => {
    await stopAllRedisServers();
  });

  it("hands the caller the charge point's answer, not a shutdown error, when the command reached the charger", async () => {
    const a = await startClusterNode(redis.url, 'stop-a');
    const b = await startClusterNode(redis.url, 'stop-b');
    nodes.push(a, b);
    const charger = await openCharger(b.urlOf('SW1'));
    sockets.push(charger);
    const receivedAt: number[] = [];
    // The charger answers 800 ms after it got the call: by then node a is already stopping.
    charger.on('message', (data) => {
      const [type, id] = JSON.parse(data.toString()) as [number, string];
      if (type !== 2) return;
      receivedAt.push(Date.now());
      setTimeout(() => charger.send(JSON.stringify([3, id, { status: 'Accepted' }])), 800);
    });
    await waitFor('SW1 on stop-b', async () => (await a.node.getPresence('SW1'))?.nodeId === 'stop-b');

    const call = a.node.sendToClient('SW1', 'ocpp1.6', 'DataTransfer', { vendorId: 'stop' }, { timeoutMs: 10_000 });
    const outcome = call.then(
      (result) => ({ result, at: Date.now() }),
      (error: unknown) => ({ error, at: Date.now() }),
    );
    await waitFor('the charger to receive the call', () => receivedAt.length === 1);
    const stopping = a.node.stop();
    const settled = await withTimeout(outcome, 10_000, 'the call to settle');
    await withTimeout(stopping, 15_000, 'node a to stop');

    expect('error' in settled ? settled.error : undefined).not.toBeInstanceOf(NodeShuttingDownError);
    expect(settled).toMatchObject({ result: { status: 'Accepted' } });
  });

  it('a drain (SIGTERM) then stop also waits for the answer instead of failing the call', async () => {
    const a = await startClusterNode(redis.url, 'drain-a');
    const b = await startClusterNode(redis.url, 'drain-b');
    nodes.push(a, b);
    const charger = await openCharger(b.urlOf('SW2'));
    sockets.push(charger);
    let received = 0;
    charger.on('message', (data) => {
      const [type, id] = JSON.parse(data.toString()) as [number, string];
      if (type !== 2) return;
      received++;
      setTimeout(() => charger.send(JSON.stringify([3, id, { status: 'Accepted' }])), 800);
    });
    await waitFor('SW2 on drain-b', async () => (await a.node.getPresence('SW2'))?.nodeId === 'drain-b');

    const outcome = a.node.sendToClient('SW2', 'ocpp1.6', 'DataTransfer', { vendorId: 'drain' }, { timeoutMs: 10_000 }).then(
      (result) => ({ result }),
      (error: unknown) => ({ error }),
    );
    await waitFor('the charger to receive the call', () => received === 1);
    // What Nest does on SIGTERM with enableShutdownHooks: drain, then stop.
    await withTimeout(a.node.drain({ windowMs: 0 }), 15_000, 'node a to drain');
    await withTimeout(a.node.stop(), 15_000, 'node a to stop');
    const settled = await withTimeout(outcome, 10_000, 'the call to settle');

    expect('error' in settled ? settled.error : undefined).not.toBeInstanceOf(NodeShuttingDownError);
    expect(settled).toMatchObject({ result: { status: 'Accepted' } });
  });

  it('a call still routing when stop() begins is refused "not sent", and the charger never gets it', async () => {
    const a = await startClusterNode(redis.url, 'race-a', { node: { ownerCacheMs: 0 } });
    const b = await startClusterNode(redis.url, 'race-b');
    nodes.push(a, b);
    const charger = await openCharger(b.urlOf('SW3'));
    sockets.push(charger);
    const received: string[] = [];
    charger.on('message', (data) => received.push(data.toString()));
    await waitFor('SW3 on race-b', async () => (await a.node.getPresence('SW3'))?.nodeId === 'race-b');

    // Accepted (the node still runs), then its presence read is in flight when stop() begins.
    const outcome = a.node.sendToClient('SW3', 'ocpp1.6', 'DataTransfer', { vendorId: 'race' }, { timeoutMs: 5_000 }).then(
      () => ({ error: undefined as unknown }),
      (error: unknown) => ({ error }),
    );
    const stopping = a.node.stop();
    const settled = await withTimeout(outcome, 10_000, 'the call to settle');
    await withTimeout(stopping, 15_000, 'node a to stop');
    await sleep(1_000);

    expect(settled.error).toBeInstanceOf(NodeShuttingDownError);
    expect((settled.error as NodeShuttingDownError).sent).toBe(false);
    expect(received).toEqual([]);
  });

  it('a call whose answer can no longer come (Redis gone) is failed at stop as "sent", not as never sent', async () => {
    const own = await startRedisServer();
    // Stop waits for remote answers at most callTimeoutMs (+ grace): short here, the call's own timeout is long.
    const a = await startClusterNode(own.url, 'gone-a', { node: { callTimeoutMs: 2_000 } });
    const b = await startClusterNode(own.url, 'gone-b');
    nodes.push(a, b);
    const charger = await openCharger(b.urlOf('SW4'));
    sockets.push(charger);
    let received = 0;
    // The charger never answers: the call waits for its deadline.
    charger.on('message', () => received++);
    await waitFor('SW4 on gone-b', async () => (await a.node.getPresence('SW4'))?.nodeId === 'gone-b');

    const outcome = a.node.sendToClient('SW4', 'ocpp1.6', 'DataTransfer', { vendorId: 'gone' }, { timeoutMs: 30_000 }).then(
      () => ({ error: undefined as unknown }),
      (error: unknown) => ({ error }),
    );
    await waitFor('the charger to receive the call', () => received === 1);
    await own.stop();
    const stopping = a.node.stop();
    const settled = await withTimeout(outcome, 20_000, 'the call to settle');
    await withTimeout(stopping, 20_000, 'node a to stop');

    expect(settled.error).toBeInstanceOf(NodeShuttingDownError);
    expect((settled.error as NodeShuttingDownError).sent).toBe(true);
  });
});
