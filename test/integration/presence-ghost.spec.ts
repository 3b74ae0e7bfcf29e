import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { RedisKeys } from '../../lib/redis/redis-keys.js';
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
  const keys = new RedisKeys();

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

  it('an entry Redis lost is not written back for a socket that closed while the refresh that found it missing was in flight', async () => {
    const a = await node('ghost-b');
    const socket = await openCharger(a.urlOf('GHOST-2'));
    sockets.push(socket);
    expect(await presence(a)).toEqual({ 'GHOST-2': 'ghost-b' });
    // Redis lost the entry (a restart without persistence, an eviction).
    await admin.del(keys.presence('GHOST-2'));

    // The refresh that will find it missing is held in Redis while the charger leaves.
    await admin.call('CLIENT', 'PAUSE', '800', 'WRITE');
    const refreshed = a.adapter.refreshPresence();
    socket.close();
    await closed(socket);
    await refreshed;

    // Nothing is left for the closed socket (not an entry that would live its whole TTL).
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

  /**
   * Chaos run dHTEQ2: a charge point gave up a handshake on an overloaded node (its 5 s handshake
   * timeout) and connected to another node. The first node claimed presence only afterwards
   * (newer epoch, over the live socket's entry) and, its client gone, removed its claim: the
   * identity was left with no entry while its socket stayed open elsewhere, and every other node
   * answered a definitive NotConnected for it until the owner's next refresh (up to 100 s).
   */
  it('a handshake given up after its claim gives the identity back to the live socket it displaced', async () => {
    const identity = 'GIVEN-UP-1';
    const a = await node('given-a');
    const b = await node('given-b');
    const live = await openCharger(a.urlOf(identity));
    sockets.push(live);
    const owner = await b.adapter.getPresence(identity);
    expect(owner?.nodeId).toBe('given-a');

    // b's claim is held in Redis (writes paused) while its client goes away.
    const upgradeArrived = new Promise<void>((resolve) => b.http.prependListener('upgrade', () => resolve()));
    await admin.call('CLIENT', 'PAUSE', '1000', 'WRITE');
    const abandoned = new WebSocket(b.urlOf(identity), 'ocpp1.6');
    abandoned.on('error', () => undefined);
    await upgradeArrived;
    abandoned.terminate();

    // The claim landed (the epoch counter moved past a's) and was given up (no entry names b).
    await waitFor(
      'b to claim and give up its claim',
      async () => {
        const counter = Number(await admin.get(keys.presenceEpoch(identity)));
        const entry = await admin.hget(keys.presence(identity), 'node');
        return counter > owner!.epoch && entry !== 'given-b';
      },
      { timeoutMs: 10_000 },
    );

    expect(live.readyState).toBe(WebSocket.OPEN);
    expect(await b.adapter.getPresence(identity)).toEqual(owner);
    expect(await a.adapter.getPresence(identity)).toEqual(owner);
  });

  it('a given-up claim never undoes a newer one, and goes when it displaced nobody', async () => {
    const a = await node('release-a');
    const b = await node('release-b');
    const first = await a.adapter.setPresence('REL-1', 'ocpp1.6', Date.now());
    const given = await b.adapter.setPresence('REL-1', 'ocpp1.6', Date.now());
    expect(given.previous).toEqual(first.record);
    const newer = await a.adapter.setPresence('REL-1', 'ocpp1.6', Date.now());
    expect(await b.adapter.releaseClaim(given)).toBe(false);
    expect(await b.adapter.getPresence('REL-1')).toEqual(newer.record);

    const alone = await b.adapter.setPresence('REL-2', 'ocpp2.0.1', Date.now());
    expect(alone.previous).toBeNull();
    expect(await b.adapter.releaseClaim(alone)).toBe(true);
    expect(await admin.exists(keys.presence('REL-2'))).toBe(0);
  });
});
