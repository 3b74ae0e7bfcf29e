import 'reflect-metadata';
import { afterAll, describe, expect, it } from '@jest/globals';
import { connectedChargePoint } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { CsmsProcess } from '../support/csms-process.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import { withTimeout } from '../support/wait.js';

const WINDOW_MS = 500;
const SETTLE_MS = 500;
/** Generous: this catches a hang (30 s used to be the norm), it is not a speed target. */
const MARGIN_MS = 8_000;

describe('sample process shutdown with Redis down', () => {
  const processes: CsmsProcess[] = [];
  const clients: RpcClient[] = [];

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close({ force: true }).catch(() => undefined)));
    await Promise.all(processes.map((csms) => csms.kill9().catch(() => undefined)));
    await stopAllRedisServers();
  });

  it('SIGTERM exits within the drain window + settle time + a margin, not after waiting on Redis', async () => {
    const redis = await startRedisServer();
    const csms = await CsmsProcess.start('shutdown-redis-down', {
      REDIS_URL: redis.url,
      OCPP_DRAIN_WINDOW_MS: String(WINDOW_MS),
      OCPP_DRAIN_SETTLE_MS: String(SETTLE_MS),
    });
    processes.push(csms);
    for (const identity of ['SHUT-1', 'SHUT-2', 'SHUT-3']) clients.push(await connectedChargePoint(csms.wsUrl, identity));

    await redis.kill9();
    process.kill(csms.pid, 'SIGTERM');

    const bound = WINDOW_MS + SETTLE_MS + MARGIN_MS;
    await withTimeout(csms.exited, bound, 'the sample to exit after SIGTERM with Redis down').catch((error: Error) => {
      throw new Error(`${error.message}; its log tail:\n${csms.output.join('').slice(-2000)}`);
    });
    expect(csms.output.join('')).toMatch(/leaving the cluster without clean-up: Redis is unreachable/);
  }, 60_000);
});
