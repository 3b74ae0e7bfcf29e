import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { WebSocket } from 'ws';
import { startClusterNode, openCharger, closed, type RunningClusterNode } from '../support/cluster-node.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { TcpDelayProxy } from '../support/tcp-delay-proxy.js';

/**
 * Issue 9 item 9: the same charge point connects to node A and, as soon as A's handshake
 * completed, to node B. B's socket is the newer one and must survive, whatever the latency
 * between each node and Redis: here A reaches Redis over a path 5 ms slower each way.
 */
describe('presence ownership follows handshake order', () => {
  const ROUNDS = 300;
  let redis: RedisServer;
  let proxy: TcpDelayProxy;
  let a: RunningClusterNode;
  let b: RunningClusterNode;
  const sockets: WebSocket[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
    proxy = new TcpDelayProxy(redis.port, 5);
    await proxy.start();
    a = await startClusterNode(proxy.url, 'node-a');
    b = await startClusterNode(redis.url, 'node-b');
  });

  afterAll(async () => {
    for (const socket of sockets) socket.terminate();
    await a?.stop();
    await b?.stop();
    await proxy?.stop();
    await stopAllRedisServers();
  });

  it(`keeps the newer socket (B) in each of ${ROUNDS} rounds, and presence names B`, async () => {
    const wrongWinners: string[] = [];
    const presenceNotB: string[] = [];
    const onB: Array<{ identity: string; socket: WebSocket }> = [];
    for (let round = 0; round < ROUNDS; round++) {
      const identity = `ORDER-${round}`;
      const older = await openCharger(a.urlOf(identity));
      const newer = await openCharger(b.urlOf(identity));
      sockets.push(older, newer);
      // B's handshake completed after A's: from now on presence must name B.
      const owner = await b.adapter.getPresence(identity);
      if (owner?.nodeId !== 'node-b') presenceNotB.push(`${identity}: ${owner?.nodeId ?? 'nobody'}`);
      // One of the two sockets goes (the evicted one): it must be A's.
      await Promise.race([closed(older), closed(newer)]);
      if (newer.readyState !== WebSocket.OPEN) wrongWinners.push(identity);
      onB.push({ identity, socket: newer });
    }
    expect(wrongWinners).toEqual([]);
    expect(presenceNotB).toEqual([]);
    // Nothing closed a newer socket later either, and A holds none of them.
    expect(onB.filter(({ socket }) => socket.readyState !== WebSocket.OPEN).map(({ identity }) => identity)).toEqual([]);
    expect(a.node.listLocal()).toEqual([]);
    const owners = await a.adapter.getPresenceBatch(onB.map(({ identity }) => identity));
    expect([...owners.values()].filter((record) => record.nodeId !== 'node-b')).toEqual([]);
    expect(owners.size).toBe(ROUNDS);
  }, 120_000);
});
