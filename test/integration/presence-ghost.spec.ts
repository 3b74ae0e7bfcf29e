import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { closed, openCharger, startClusterNode, type RunningClusterNode } from '../support/cluster-node.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

/**
 * Issue 9 item 7: a presence refresh that runs while a connection's first claim is in flight
 * must not give it a second epoch, or the removal on close misses and the charge point stays
 * listed as connected until its entry's TTL (300 s) runs out.
 */
describe('ghost presence', () => {
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
    await Promise.all(nodes.splice(0).map((node) => node.stop()));
    await admin.flushall();
  });

  afterAll(async () => {
    admin?.disconnect();
    await stopAllRedisServers();
  });

  async function node(nodeId: string): Promise<RunningClusterNode> {
    const started = await startClusterNode(redis.url, nodeId, { adapter: { nodeTtlMs: 5000 } });
    nodes.push(started);
    return started;
  }

  /** Current presence as identity → node, from Redis through a node's adapter. */
  async function presence(from: RunningClusterNode): Promise<Record<string, string>> {
    const records = await from.adapter.listPresence();
    return Object.fromEntries(records.map((record) => [record.identity, record.nodeId]).sort());
  }

  it('a refresh inside the first claim (writes paused in Redis) leaves no entry once the charger left', async () => {
    const a = await node('ghost-a');
    const refreshes: Promise<void>[] = [];
    const refresh = (): void => void refreshes.push(a.adapter.refreshPresence());
    // The refresh runs while the claim is held in Redis: once right after the upgrade request
    // arrived, once when the charger sees its socket open.
    a.http.prependListener('upgrade', () => setImmediate(refresh));
    await admin.call('CLIENT', 'PAUSE', '800', 'WRITE');
    const socket = await openCharger(a.urlOf('GHOST-1'));
    sockets.push(socket);
    refresh();
    await Promise.all(refreshes);
    expect(await presence(a)).toEqual({ 'GHOST-1': 'ghost-a' });

    socket.close();
    await closed(socket);
    await waitFor('the entry of the closed socket to go', async () => (await a.adapter.getPresence('GHOST-1')) === null, {
      timeoutMs: 10_000,
    });
    expect(await presence(a)).toEqual({});
  });

  it('after hundreds of connect/close cycles on two nodes, with refreshes running, presence equals the open sockets', async () => {
    const a = await node('churn-a');
    const b = await node('churn-b');
    const WORKERS = 8;
    const CYCLES = 50;
    let churning = true;
    // The periodic refresh, back to back, so that it keeps landing inside claims.
    const refreshLoop = (async () => {
      while (churning) {
        await Promise.all([a.adapter.refreshPresence(), b.adapter.refreshPresence()]);
        // With nothing to refresh no I/O happens: let the sockets' events run.
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const lastOpen = new Map<string, { socket: WebSocket; nodeId: string }>();
    await Promise.all(
      Array.from({ length: WORKERS }, async (_, worker) => {
        const moving = `CHURN-${worker}`;
        let previous: WebSocket | null = null;
        for (let cycle = 0; cycle < CYCLES; cycle++) {
          const target = cycle % 2 === 0 ? a : b;
          // A charge point that comes and goes.
          const brief = await openCharger(target.urlOf(`BRIEF-${worker}-${cycle}`));
          sockets.push(brief);
          brief.close();
          // One that moves between the nodes: the new socket first, then the old one goes.
          const next = await openCharger(target.urlOf(moving));
          sockets.push(next);
          if (previous) {
            previous.close();
            await closed(previous);
          }
          previous = next;
          lastOpen.set(moving, { socket: next, nodeId: target.nodeId });
        }
      }),
    );
    churning = false;
    await refreshLoop;

    const open = Object.fromEntries(
      [...lastOpen].filter(([, { socket }]) => socket.readyState === WebSocket.OPEN).map(([identity, { nodeId }]) => [identity, nodeId]).sort(),
    );
    expect(Object.keys(open)).toHaveLength(WORKERS);
    let last: Record<string, string> = {};
    await waitFor(
      'presence to equal the open sockets',
      async () => JSON.stringify((last = await presence(a))) === JSON.stringify(open),
      { timeoutMs: 15_000 },
    ).catch(() => undefined);
    // Shown as a diff when it fails: ghosts are the extra entries.
    expect(last).toEqual(open);
  }, 120_000);
});
