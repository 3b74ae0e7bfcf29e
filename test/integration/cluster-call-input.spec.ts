import { HandlerRegistry } from '../../lib/cluster/handler-registry.js';
import { SILENT_LOGGER } from '../../lib/cluster/logger.js';
import type { OcppClusterNode } from '../../lib/cluster/ocpp-cluster-node.js';
import { createNode, type NodeHost } from '../../lib/create-node.js';
import { MAX_CALL_TIMEOUT_MS } from '../../lib/protocol/call-timeout.js';
import {
  ClusterUnavailableError,
  InvalidOptionsError,
  NotConnectedError,
  OcppValidationError,
  PayloadTooLargeError,
} from '../../lib/protocol/errors.js';
import { RedisAdapter } from '../../lib/redis/redis-adapter.js';
import { resolveOptions } from '../../lib/resolve-options.js';
import type { OcppClusterOptions } from '../../lib/ocpp-cluster.options.js';
import { RawChargePoint } from '../support/charge-point.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

/**
 * What a caller gets for input the cluster cannot carry, with two nodes on a real Redis: the
 * charge point sits on node B, calls come from node A (remote) or B (local).
 */
describe('call input the cluster cannot carry (two nodes on a real Redis)', () => {
  const MAX_PAYLOAD = 2048;
  let server: RedisServer;
  let nodeA: OcppClusterNode;
  let nodeB: OcppClusterNode;
  const hosts: NodeHost[] = [];
  let charger: RawChargePoint;

  async function startClusterNode(nodeId: string, options: OcppClusterOptions = {}): Promise<{ node: OcppClusterNode; port: number; adapter: RedisAdapter }> {
    const adapter = new RedisAdapter({ url: server.url, nodeTtlMs: 1500, takeoverIntervalMs: 200, logger: SILENT_LOGGER });
    const resolved = resolveOptions({ nodeId, port: 0, host: '127.0.0.1', pingIntervalMs: 0, maxPayload: MAX_PAYLOAD, ...options });
    const host = createNode({ options: resolved, adapter, handlers: new HandlerRegistry(), logger: SILENT_LOGGER });
    hosts.push(host);
    const port = await host.start();
    return { node: host.node, port: port!, adapter };
  }

  const deep = (levels: number): Record<string, unknown> => {
    const root: Record<string, unknown> = {};
    let node = root;
    for (let i = 0; i < levels; i++) node = (node.a = {}) as Record<string, unknown>;
    return root;
  };

  /** The charger answers every CALL with { status: 'Accepted' }. */
  function answerEveryCall(cp: RawChargePoint): void {
    cp.socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as unknown[];
      if (frame[0] === 2) cp.send([3, frame[1], { status: 'Accepted' }]);
    });
  }

  const callsReceived = (): unknown[] => charger.frames.filter((frame) => (frame as unknown[])[0] === 2);

  beforeAll(async () => {
    server = await startRedisServer();
    const a = await startClusterNode('node-a');
    nodeA = a.node;
    const b = await startClusterNode('node-b');
    nodeB = b.node;
    charger = await RawChargePoint.connect(`ws://127.0.0.1:${b.port}/ocpp/CP-B`, 'ocpp1.6');
    answerEveryCall(charger);
    await waitFor('CP-B in presence', async () => (await nodeA.getPresence('CP-B'))?.nodeId === 'node-b');
    // These tests are about input, not outages: an absent charger is NotConnected only while node A
    // can vouch for presence (a slow heartbeat answer while two nodes start on a busy machine makes
    // it answer ClusterUnavailableError for a TTL, as it must).
    await waitFor('node A to vouch for presence', () => a.adapter.presenceDoubt() === null);
  });

  afterAll(async () => {
    charger?.close();
    for (const host of hosts.splice(0)) await host.stop();
    await stopAllRedisServers();
  });

  it('broadcastBatch: an identity that cannot be a key gets its own error; the others get theirs', async () => {
    const outcomes = await nodeA.broadcastBatch(['CP-B', 'A{B}', 'CP-GONE', 'bad*id'], 'DataTransfer', { vendorId: 'x' }, { timeoutMs: 5_000 });
    expect(outcomes.map((outcome) => [outcome.identity, outcome.status])).toEqual([
      ['CP-B', 'fulfilled'],
      ['A{B}', 'rejected'],
      ['CP-GONE', 'rejected'],
      ['bad*id', 'rejected'],
    ]);
    expect(outcomes[0]).toMatchObject({ result: { status: 'Accepted' } });
    for (const index of [1, 3]) {
      const outcome = outcomes[index] as { error: Error };
      expect(outcome.error).toBeInstanceOf(NotConnectedError);
      expect(outcome.error.message).toContain('not a valid charge point identity');
    }
    expect((outcomes[2] as { error: Error }).error).toBeInstanceOf(NotConnectedError);
  });

  it('a payload too deep for JSON is a validation error, locally and across nodes (not a cluster outage)', async () => {
    const before = callsReceived().length;
    const payload = { vendorId: 'x', data: deep(5_000) };
    for (const [node, route] of [[nodeA, 'remote'], [nodeB, 'local']] as const) {
      const error = await node.sendToClient('CP-B', undefined, 'DataTransfer', payload).catch((e: unknown) => e);
      expect([route, error]).toEqual([route, expect.any(OcppValidationError)]);
      expect(error).not.toBeInstanceOf(ClusterUnavailableError);
      expect(error).toMatchObject({ direction: 'request', errorCode: 'FormatViolation' });
    }
    await expect(nodeA.broadcastBatch(['CP-B'], 'DataTransfer', payload)).rejects.toBeInstanceOf(OcppValidationError);
    await expect(nodeA.broadcast('DataTransfer', payload)).rejects.toBeInstanceOf(OcppValidationError);
    expect(callsReceived().length).toBe(before);
  });

  it('a frame over maxPayload is refused by the owner before sending (sent: false), and the caller learns it', async () => {
    const before = callsReceived().length;
    const payload = { vendorId: 'x', data: 'x'.repeat(MAX_PAYLOAD) };
    for (const node of [nodeA, nodeB]) {
      const error = await node.sendToClient('CP-B', undefined, 'DataTransfer', payload, { timeoutMs: 5_000 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PayloadTooLargeError);
      expect(error).toMatchObject({ sent: false, limit: MAX_PAYLOAD, identity: 'CP-B', action: 'DataTransfer' });
    }
    // Still usable, and nothing oversized ever reached the charger.
    await expect(nodeA.sendToClient('CP-B', undefined, 'DataTransfer', { vendorId: 'x' })).resolves.toEqual({ status: 'Accepted' });
    expect(callsReceived().length).toBe(before + 1);
    expect(charger.rawFrames.every((frame) => Buffer.byteLength(frame) <= MAX_PAYLOAD)).toBe(true);
  });

  it(`refuses a timeout above ${MAX_CALL_TIMEOUT_MS} ms in every call and in callTimeoutMs`, async () => {
    const tooLong = { timeoutMs: 2 ** 31 };
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ['sendToClient', () => nodeA.sendToClient('CP-B', undefined, 'DataTransfer', { vendorId: 'x' }, tooLong)],
      ['sendMessage', () => nodeA.sendMessage('CP-B', 'DataTransfer', { vendorId: 'x' }, tooLong)],
      ['broadcast', () => nodeA.broadcast('DataTransfer', { vendorId: 'x' }, tooLong)],
      ['broadcastBatch', () => nodeA.broadcastBatch(['CP-B'], 'DataTransfer', { vendorId: 'x' }, tooLong)],
      ['sendToClient (24 h + 1 ms)', () => nodeA.sendToClient('CP-B', undefined, 'DataTransfer', { vendorId: 'x' }, { timeoutMs: MAX_CALL_TIMEOUT_MS + 1 })],
    ];
    for (const [name, attempt] of attempts) {
      const error = await attempt().catch((e: unknown) => e);
      expect([name, error]).toEqual([name, expect.any(InvalidOptionsError)]);
      expect((error as InvalidOptionsError).option).toBe('timeoutMs');
    }
    expect(() => resolveOptions({ callTimeoutMs: 2 ** 31 })).toThrow(InvalidOptionsError);
    expect(resolveOptions({ callTimeoutMs: MAX_CALL_TIMEOUT_MS }).callTimeoutMs).toBe(MAX_CALL_TIMEOUT_MS);
    // The maximum itself is accepted.
    await expect(nodeA.sendToClient('CP-B', undefined, 'DataTransfer', { vendorId: 'x' }, { timeoutMs: MAX_CALL_TIMEOUT_MS })).resolves.toEqual({
      status: 'Accepted',
    });
  });
});
