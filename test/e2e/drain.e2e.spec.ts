import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connectedChargePoint } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { CsmsProcess } from '../support/csms-process.js';
import { HealthCheckingBalancer } from '../support/health-balancer.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import type { RedisServer } from '../support/redis-server.js';
import { waitFor, withTimeout } from '../support/wait.js';

const CHARGERS = 12;

describe('draining a node (SIGTERM) behind a health-checking load balancer', () => {
  let redis: RedisServer;
  let a: CsmsProcess;
  let b: CsmsProcess;
  let balancer: HealthCheckingBalancer;
  const clients: RpcClient[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
    const env = { OCPP_NODE_TTL_MS: '2000', OCPP_DRAIN_WINDOW_MS: '1500', OCPP_DRAIN_SETTLE_MS: '15000' };
    [a, b] = await CsmsProcess.startTogether([
      ['drain-a', { ...env, REDIS_URL: redis.url }],
      ['drain-b', { ...env, REDIS_URL: redis.url }],
    ]);
    balancer = new HealthCheckingBalancer([a.port]); // B joins the balancer once every charger sits on A
    await balancer.start();
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close({ force: true }).catch(() => undefined)));
    await balancer?.stop();
    await Promise.all([a?.kill9(), b?.kill9()]);
    await stopAllRedisServers();
  });

  it('moves every charge point to the other node with no call lost', async () => {
    for (let i = 0; i < CHARGERS; i++) {
      const client = await connectedChargePoint(balancer.wsUrl, `DRAIN-${i}`, {
        reconnect: true,
        backoff: { initialDelay: 100, maxDelay: 500 },
      });
      client.handle('DataTransfer', ({ params }) => ({ status: 'Accepted', data: params.data }));
      clients.push(client);
    }
    balancer.addBackend(b.port);
    await waitFor('every charger on A, seen from B', async () => {
      const { body } = await b.http('GET', '/chargers');
      return body.filter((c: any) => c.nodeId === 'drain-a').length === CHARGERS;
    });

    const closeCodes: number[] = [];
    for (const client of clients) client.on('disconnect', ({ code }: { code: number }) => closeCodes.push(code));

    // Calls from B to every charger, continuously, through the whole drain.
    let calling = true;
    const outcomes: Array<{ status: number; body: any }> = [];
    const caller = (async () => {
      let round = 0;
      while (calling) {
        const results = await Promise.all(
          clients.map((_, i) => b.http('POST', `/chargers/DRAIN-${i}/calls/DataTransfer?timeoutMs=20000`, { vendorId: 'drain', data: `${round}` })),
        );
        outcomes.push(...results);
        round++;
      }
    })();

    process.kill(a.pid, 'SIGTERM');
    await waitFor('A to report not ready', async () => (await fetch(`${a.httpUrl}/health`).then((r) => r.status).catch(() => 0)) !== 200);
    await waitFor('every charger on B', async () => {
      const { body } = await b.http('GET', '/chargers');
      return body.length === CHARGERS && body.every((c: any) => c.nodeId === 'drain-b');
    }, { timeoutMs: 30_000 });
    await withTimeout(new Promise((resolve) => a.exited.then(resolve)), 30_000, 'A to exit after draining');
    calling = false;
    await caller;

    expect(closeCodes.filter((code) => code === 1012)).toHaveLength(CHARGERS);
    expect(outcomes.length).toBeGreaterThanOrEqual(CHARGERS * 2);
    expect(outcomes.filter((o) => o.status !== 200)).toEqual([]);
  }, 90_000);
});
