import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { HealthIndicatorService } from '@nestjs/terminus';
import { Redis } from 'ioredis';
import type { WebSocket } from 'ws';
import { OcppClusterHealthIndicator } from '../../lib/nest/ocpp-cluster.health-indicator.js';
import { openCharger, startClusterNode, UpgradeRefusedError, type RunningClusterNode } from '../support/cluster-node.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

/**
 * Issue 9 item 8: Redis answers PING but refuses writes (maxmemory reached, noeviction). The
 * node must not report ready then, and a charge point it accepted meanwhile must become
 * reachable from other nodes within seconds of Redis taking writes again.
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

  it('a charge point accepted while writes were refused is reachable from another node soon after they are taken again', async () => {
    const a = await node('oom-a', { refuseUpgradesWhileTransportDown: false });
    const b = await node('oom-b');
    await refuseWrites();
    sockets.push(await openCharger(a.urlOf('OOM-1')));
    expect(await b.adapter.getPresence('OOM-1')).toBeNull();
    expect((await readiness(a).isReady()).ocpp.status).toBe('down');

    await liftLimit();
    // The refresh period is 100 s (presenceTtlSeconds 300): only a prompt retry makes this.
    await waitFor('node B to find OOM-1 on node A', async () => (await b.adapter.getPresence('OOM-1'))?.nodeId === 'oom-a', {
      timeoutMs: 10_000,
    });
  });

  it('by default, an upgrade whose claim Redis refuses gets 503 with the reason, and succeeds once writes are taken again', async () => {
    const a = await node('oom-a');
    const b = await node('oom-b');
    await refuseWrites();
    const refusal = await openCharger(a.urlOf('OOM-2')).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(UpgradeRefusedError);
    expect((refusal as UpgradeRefusedError).status).toBe(503);
    expect((refusal as UpgradeRefusedError).body).toMatch(/presence claim failed: .*OOM command not allowed/);

    await liftLimit();
    sockets.push(await openCharger(a.urlOf('OOM-2')));
    // Claimed before the handshake completed: reachable from B at once.
    expect((await b.adapter.getPresence('OOM-2'))?.nodeId).toBe('oom-a');
  });
});
