import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { HealthIndicatorService } from '@nestjs/terminus';
import { Redis } from 'ioredis';
import type { WebSocket } from 'ws';
import { OcppClusterHealthIndicator } from '../../lib/nest/ocpp-cluster.health-indicator.js';
import { NotConnectedError } from '../../lib/protocol/errors.js';
import { closed, openCharger, startClusterNode, UpgradeRefusedError, type RunningClusterNode } from '../support/cluster-node.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

/**
 * Issue 9 item 8: Redis answers PING but refuses writes (maxmemory reached, noeviction). The
 * node must not report ready then; membership (presence) is still written, so presence stays
 * true while commands are refused, typed. A claim Redis refuses for another reason is retried
 * within seconds once Redis takes it.
 */
describe('presence while Redis refuses writes', () => {
  let redis: RedisServer;
  let admin: Redis;
  const nodes: RunningClusterNode[] = [];
  const sockets: WebSocket[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
    admin = new Redis(redis.port);
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
  });

  afterEach(async () => {
    await liftLimit();
    for (const socket of sockets.splice(0)) socket.terminate();
    await Promise.all(nodes.splice(0).map((node) => node.stop()));
    await admin.flushall();
  });

  afterAll(async () => {
    admin?.disconnect();
    await stopAllRedisServers();
  });

  async function node(nodeId: string, options: { refuseUpgradesWhileTransportDown?: boolean } = {}): Promise<RunningClusterNode> {
    const started = await startClusterNode(redis.url, nodeId, { node: options });
    nodes.push(started);
    return started;
  }

  /** Every write Redis would need memory for is refused with OOM from now on. */
  const refuseWrites = (): Promise<unknown> => admin.config('SET', 'maxmemory', '1');
  const liftLimit = (): Promise<unknown> => admin.config('SET', 'maxmemory', '0');

  function readiness(running: RunningClusterNode): OcppClusterHealthIndicator {
    return new OcppClusterHealthIndicator(new HealthIndicatorService(), running.node, running.options);
  }

  it('readiness is down, naming the refused write, while Redis refuses writes; up again after', async () => {
    const a = await node('oom-a');
    const health = readiness(a);
    expect((await health.isReady()).ocpp.status).toBe('up');

    await refuseWrites();
    const down = (await health.isReady()).ocpp;
    expect(down.status).toBe('down');
    expect(String(down.reason)).toMatch(/OOM command not allowed/);

    await liftLimit();
    await waitFor('readiness up again', async () => (await health.isReady()).ocpp.status === 'up', { timeoutMs: 10_000 });
  });

  it('a charge point that connects or moves while Redis refuses writes is listed where it is at once; a call to it is refused typed, never "not connected"', async () => {
    const a = await node('oom-a');
    const b = await node('oom-b');
    const first = await openCharger(a.urlOf('OOM-1'));
    sockets.push(first);
    await refuseWrites();

    // It moves to B (a reboot, a load balancer): B's claim is membership, written despite maxmemory.
    sockets.push(await openCharger(b.urlOf('OOM-1')));
    first.close();
    await closed(first);
    expect((await a.adapter.getPresence('OOM-1'))?.nodeId).toBe('oom-b');
    // A charge point new to the cluster is listed at once too.
    sockets.push(await openCharger(a.urlOf('OOM-2')));
    expect((await b.adapter.getPresence('OOM-2'))?.nodeId).toBe('oom-a');

    // The command itself is data: B's inbox refuses it, and A's caller hears that it was not sent.
    const error = (await a.node.sendToClient('OOM-1', 'ocpp1.6', 'DataTransfer', { vendorId: 'oom' }, { timeoutMs: 5_000 }).catch((e: unknown) => e)) as {
      code?: string;
      sent?: boolean;
    };
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(NotConnectedError);
    expect(error.code).toBe('OCPP_CLUSTER_UNAVAILABLE');
    expect(String((error as Error).message)).toMatch(/OOM command not allowed/);
  });

  it('a claim Redis refuses is retried within seconds once Redis takes it (accepted unclaimed meanwhile)', async () => {
    const a = await node('oom-a', { refuseUpgradesWhileTransportDown: false });
    const b = await node('oom-b');
    // A key of the wrong type where the presence entry goes: Redis refuses this one claim (WRONGTYPE).
    const presenceKey = a.adapter.keys.presence('BLOCKED-1');
    await admin.set(presenceKey, 'not a hash');
    sockets.push(await openCharger(a.urlOf('BLOCKED-1')));
    expect(await admin.type(presenceKey)).toBe('string');

    await admin.del(presenceKey);
    // The refresh period is 100 s (presenceTtlSeconds 300): only a prompt retry makes this.
    await waitFor('node B to find BLOCKED-1 on node A', async () => (await b.adapter.getPresence('BLOCKED-1'))?.nodeId === 'oom-a', {
      timeoutMs: 10_000,
    });
  });

  it('by default, an upgrade whose claim Redis refuses gets 503 with the reason, and succeeds once Redis takes it', async () => {
    const a = await node('oom-a');
    const b = await node('oom-b');
    const presenceKey = a.adapter.keys.presence('BLOCKED-2');
    await admin.set(presenceKey, 'not a hash');
    const refusal = await openCharger(a.urlOf('BLOCKED-2')).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(UpgradeRefusedError);
    expect((refusal as UpgradeRefusedError).status).toBe(503);
    expect((refusal as UpgradeRefusedError).body).toMatch(/presence claim failed: .*WRONGTYPE/);

    await admin.del(presenceKey);
    sockets.push(await openCharger(a.urlOf('BLOCKED-2')));
    // Claimed before the handshake completed: reachable from B at once.
    expect((await b.adapter.getPresence('BLOCKED-2'))?.nodeId).toBe('oom-a');
  });
});
