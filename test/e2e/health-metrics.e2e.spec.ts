import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  Broadcaster,
  OCPP_BROADCASTER,
  OCPP_PRESENCE_STORE,
  OCPP_REDIS_POOL,
  OCPP_STREAM_CONSUMER,
  PresenceStore,
  RedisConnectionPool,
  StreamConsumer,
} from '../../lib/transport.js';
import { connectExpectingRefusalWindow, connectedChargePoint } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { startSampleApp } from '../support/ocpp-test-app.js';
import type { TestApp } from '../support/ocpp-test-app.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import type { RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

async function get(app: TestApp, path: string): Promise<{ status: number; body: any; text: string }> {
  const response = await fetch(`${app.httpUrl}${path}`);
  const text = await response.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: response.status, body, text };
}

/** The value of one Prometheus sample, 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => found[key] === value)) return Number(match[3]);
  }
  return 0;
}

describe('health and metrics on real Redis', () => {
  let redis: RedisServer;
  let app: TestApp;
  let caller: TestApp;
  const clients: RpcClient[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
    app = await startSampleApp({
      nodeId: 'health-a',
      // One inbox handler at a time, so a charge point that never answers builds a real backlog.
      redis: { url: redis.url, maxInFlight: 1, nodeTtlMs: 5_000 },
      health: { lagDegraded: 5, lagDown: 20, pingTimeoutMs: 500 },
    });
    caller = await startSampleApp({ nodeId: 'health-b', redis: { url: redis.url, nodeTtlMs: 5_000 } });
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close({ force: true }).catch(() => undefined)));
    await caller?.close();
    await app?.close();
    await stopAllRedisServers();
  });

  it('exposes the Redis parts as injectable providers', async () => {
    expect(app.app.get(OCPP_REDIS_POOL)).toBeInstanceOf(RedisConnectionPool);
    const presence = app.app.get(OCPP_PRESENCE_STORE);
    expect(presence).toBeInstanceOf(PresenceStore);
    expect(app.app.get(OCPP_BROADCASTER)).toBeInstanceOf(Broadcaster);
    const consumer = app.app.get(OCPP_STREAM_CONSUMER)();
    expect(consumer).toBeInstanceOf(StreamConsumer);
    expect(consumer.isRunning).toBe(true);
  });

  it('readiness goes 200 → 503 while Redis is down and back to 200; liveness stays 200; upgrades get 503 meanwhile', async () => {
    const ready = await get(app, '/health');
    // The reason is part of the expectation, so a failure says why the node was not ready.
    expect({ status: ready.status, error: ready.body?.error }).toEqual({ status: 200, error: {} });
    expect(ready.body.info.ocpp).toMatchObject({
      status: 'up',
      nodeId: 'health-a',
      livenessHeld: true,
      consumerRunning: true,
      redis: { writer: { ok: true }, subscriber: { ok: true }, blocking: { ok: true } },
    });
    expect(ready.body.info.ocpp.redis.writer.rttMs).toEqual(expect.any(Number));

    await redis.stop();
    try {
      await waitFor('readiness to fail', async () => (await get(app, '/health')).status === 503);
      const down = await get(app, '/health');
      expect(down.body.error.ocpp).toMatchObject({ status: 'down', reason: expect.stringMatching(/writer|liveness/) });
      expect((await get(app, '/health/live')).status).toBe(200);
      await expect(connectedChargePoint(app.wsUrl, 'DURING-OUTAGE')).rejects.toThrow(/Service Unavailable|503/);
    } finally {
      await redis.start();
    }
    const faultEndedAt = Date.now();
    // Upgrades are refused (503) only for a while after Redis is back.
    const { client, window } = await connectExpectingRefusalWindow(app.wsUrl, 'AFTER-OUTAGE', { faultEndedAt });
    clients.push(client);
    expect(window.lastRefusalMs ?? 0).toBeLessThan(10_000);
    await waitFor('readiness to come back', async () => (await get(app, '/health')).status === 200, { timeoutMs: 20_000 });
    expect((await get(app, '/health/live')).status).toBe(200);
  });

  it('/metrics counters move with real traffic', async () => {
    const before = (await get(app, '/metrics')).text;
    const cp = await connectedChargePoint(app.wsUrl, 'METERED', { protocols: ['ocpp2.0.1'] });
    clients.push(cp);
    cp.handle('Reset', () => ({ status: 'Accepted' }));
    for (let i = 0; i < 3; i++) await cp.call('Heartbeat', {});
    await waitFor('presence of METERED', async () => (await caller.service.getPresence('METERED'))?.nodeId === 'health-a');
    expect(await caller.service.sendToClient('METERED', 'ocpp2.0.1', 'Reset', { type: 'Immediate' })).toEqual({ status: 'Accepted' });
    expect(await app.service.sendToClient('METERED', 'ocpp2.0.1', 'Reset', { type: 'Immediate' })).toEqual({ status: 'Accepted' });
    await expect(connectedChargePoint(app.wsUrl, 'bad{identity}')).rejects.toThrow();

    const after = (await get(app, '/metrics')).text;
    const heartbeats = { protocol: 'ocpp2.0.1', action: 'Heartbeat', outcome: 'ok' };
    expect(sample(after, 'ocpp_inbound_calls_total', heartbeats) - sample(before, 'ocpp_inbound_calls_total', heartbeats)).toBe(3);
    expect(sample(after, 'ocpp_connections', { protocol: 'ocpp2.0.1' })).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'ocpp_outbound_calls_total', { action: 'Reset', route: 'local', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'ocpp_outbound_call_duration_seconds_count', { route: 'local' })).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'ocpp_upgrades_rejected_total', { reason: 'bad-identity' })).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'ocpp_presence_operations_total', { operation: 'claim', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(after).toMatch(/^ocpp_consumer_lag \d+/m);
    expect(after).toMatch(/^ocpp_consumer_pending \d+/m);
    expect(sample(after, 'ocpp_redis_reconnects_total')).toBeGreaterThanOrEqual(1); // from the outage above
    const callerMetrics = (await get(caller, '/metrics')).text;
    expect(sample(callerMetrics, 'ocpp_outbound_calls_total', { action: 'Reset', route: 'remote', outcome: 'ok' })).toBe(1);
  });

  it('consumer lag over the thresholds shows degraded, then down', async () => {
    const slow = await connectedChargePoint(app.wsUrl, 'SLOW');
    clients.push(slow);
    slow.handle('GetConfiguration', () => new Promise(() => undefined));
    await waitFor('presence of SLOW', async () => (await caller.service.getPresence('SLOW'))?.nodeId === 'health-a');
    const calls: Promise<unknown>[] = [];
    const send = (count: number) => {
      for (let i = 0; i < count; i++) {
        calls.push(caller.service.sendToClient('SLOW', 'ocpp1.6', 'GetConfiguration', {}, { timeoutMs: 120_000 }).catch(() => undefined));
      }
    };
    // The first occupies the one inbox handler; the rest wait unread in the stream.
    send(1 + 10);
    await waitFor('degraded readiness', async () => (await get(app, '/health')).body?.status === 'degraded');
    const degraded = await get(app, '/health');
    expect(degraded.status).toBe(200);
    expect(degraded.body.info.ocpp).toMatchObject({ status: 'degraded', lag: expect.any(Number) });
    expect(degraded.body.info.ocpp.lag).toBeGreaterThan(5);

    send(20);
    await waitFor('down readiness', async () => (await get(app, '/health')).status === 503);
    const down = await get(app, '/health');
    expect(down.body.error.ocpp.reason).toMatch(/consumer lag \d+ > 20/);
    expect(down.body.error.ocpp.lag).toBeGreaterThan(20);
    await slow.close({ force: true });
  });
});
