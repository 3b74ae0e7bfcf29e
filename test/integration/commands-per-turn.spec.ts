import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { openCharger, startClusterNode, type RunningClusterNode } from '../support/cluster-node.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

/**
 * Commands a node sends to one other node during one turn of the event loop share one inbox
 * append (one run of the inbox script, which calls XLEN once per run) instead of one each, and
 * still reach every charge point in the order they were sent, each answered to its own caller.
 */
describe('cross-node commands of one turn', () => {
  const nodes: RunningClusterNode[] = [];
  const sockets: WebSocket[] = [];
  let admin: Redis | undefined;
  let redisUrl = '';

  beforeAll(async () => {
    const redis: RedisServer = await startRedisServer();
    redisUrl = redis.url;
    admin = new Redis(redis.port);
  });

  afterAll(async () => {
    sockets.forEach((socket) => socket.terminate());
    await Promise.all(nodes.map((node) => node.stop().catch(() => undefined)));
    admin?.disconnect();
    await stopAllRedisServers();
  });

  const inboxScriptRuns = async (): Promise<number> => Number(/cmdstat_xlen:calls=(\d+)/.exec(await admin!.info('commandstats'))?.[1] ?? 0);

  it('leave in one inbox append per destination, in order per charge point, each answered', async () => {
    const a = await startClusterNode(redisUrl, 'turn-a');
    const b = await startClusterNode(redisUrl, 'turn-b');
    nodes.push(a, b);
    const identities = ['TURN1', 'TURN2', 'TURN3'];
    const received = new Map<string, string[]>(identities.map((identity) => [identity, []]));
    for (const identity of identities) {
      const charger = await openCharger(b.urlOf(identity));
      sockets.push(charger);
      charger.on('message', (data) => {
        const [type, id, , payload] = JSON.parse(data.toString()) as [number, string, string, { data: string }];
        if (type !== 2) return;
        received.get(identity)!.push(payload.data);
        charger.send(JSON.stringify([3, id, { status: 'Accepted', data: payload.data }]));
      });
    }
    for (const identity of identities) {
      await waitFor(`${identity} on turn-b`, async () => (await a.node.getPresence(identity))?.nodeId === 'turn-b');
    }
    // Owners known on node a (a first call each), so the measured calls route without a presence read.
    await Promise.all(identities.map((identity) => a.node.sendToClient(identity, 'ocpp1.6', 'DataTransfer', { vendorId: 'turn', data: 'warm' })));
    for (const list of received.values()) list.splice(0);
    const runsBefore = await inboxScriptRuns();

    const perCharger = 10;
    const calls = identities.flatMap((identity) =>
      Array.from({ length: perCharger }, (_, i) =>
        a.node.sendToClient(identity, 'ocpp1.6', 'DataTransfer', { vendorId: 'turn', data: String(i) }, { timeoutMs: 20_000 }),
      ),
    );
    const answers = await Promise.all(calls);
    const runs = (await inboxScriptRuns()) - runsBefore;

    expect(answers.map((answer) => answer.data)).toEqual(identities.flatMap(() => Array.from({ length: perCharger }, (_, i) => String(i))));
    for (const identity of identities) expect(received.get(identity)).toEqual(Array.from({ length: perCharger }, (_, i) => String(i)));
    // One command each would be 30 runs; they were sent in one turn.
    expect(runs).toBeGreaterThanOrEqual(1);
    expect(runs).toBeLessThan(identities.length * perCharger / 3);
  });
});
