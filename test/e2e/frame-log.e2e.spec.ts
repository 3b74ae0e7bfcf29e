import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectedChargePoint } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { CsmsProcess } from '../support/csms-process.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import type { RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

/**
 * The frame log (README, "Frame log"): two sample processes on one Redis, each writing its
 * frames to OCPP_FRAME_LOG; a 1.6 and a 2.0.1 charge point on node A talk, and node B sends them
 * commands carrying secrets. A's log holds every frame both ways, with the secrets redacted.
 */

const SECRET_TAG = 'TAG-SECRET-16';
const SECRET_TOKEN = 'TOKEN-SECRET-201';
const SECRET_KEY = 'authkey-SECRET-0123456789';
const SECRET_PASSWORD = 'basic-SECRET-password';

interface LogLine {
  direction: 'in' | 'out';
  identity: string;
  protocol: string;
  nodeId: string;
  raw: string;
  message?: unknown[];
  at: string;
}

function readLog(file: string): { text: string; lines: LogLine[] } {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { text, lines: [] };
  }
  // Only complete lines: the node may be half way through writing the last one.
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  return { text, lines: complete.split('\n').filter(Boolean).map((line) => JSON.parse(line) as LogLine) };
}

describe('frame log (two sample processes, real Redis)', () => {
  let redis: RedisServer;
  let dir: string;
  let nodeA: CsmsProcess;
  let nodeB: CsmsProcess;
  let cp16: RpcClient;
  let cp201: RpcClient;

  beforeAll(async () => {
    redis = await startRedisServer();
    dir = mkdtempSync(join(tmpdir(), 'frame-log-'));
    const env = { REDIS_URL: redis.url, OCPP_PING_INTERVAL_MS: '0' };
    [nodeA, nodeB] = await CsmsProcess.startTogether([
      ['fl-a', { ...env, OCPP_FRAME_LOG: join(dir, 'a.jsonl') }],
      ['fl-b', { ...env, OCPP_FRAME_LOG: join(dir, 'b.jsonl') }],
    ]);
    cp16 = await connectedChargePoint(nodeA.wsUrl, 'FL-16', { protocols: ['ocpp1.6'] });
    cp201 = await connectedChargePoint(nodeA.wsUrl, 'FL-201', { protocols: ['ocpp2.0.1'] });
    cp16.handle('ChangeConfiguration', () => ({ status: 'Accepted' }));
    cp201.handle('SetVariables', ({ params }) => ({
      setVariableResult: params.setVariableData.map((data: { component: unknown; variable: unknown }) => ({
        attributeStatus: 'Accepted',
        component: data.component,
        variable: data.variable,
      })),
    }));
  }, 120_000);

  afterAll(async () => {
    await cp16?.close({ force: true }).catch(() => undefined);
    await cp201?.close({ force: true }).catch(() => undefined);
    await Promise.all([nodeA?.stop(), nodeB?.stop()]);
    await stopAllRedisServers();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('logs every frame in and out, with idTags, idTokens and passwords redacted', async () => {
    await cp16.call('BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' });
    await cp16.call('Heartbeat', {});
    await cp16.call('Authorize', { idTag: SECRET_TAG });
    await cp201.call('Authorize', { idToken: { idToken: SECRET_TOKEN, type: 'ISO14443' } });

    // Cross-node: node B calls the charge points that sit on node A.
    const change = await nodeB.http('POST', '/chargers/FL-16/calls/ChangeConfiguration', { key: 'AuthorizationKey', value: SECRET_KEY });
    expect(change).toEqual({ status: 200, body: { result: { status: 'Accepted' } } });
    const setVariables = await nodeB.http('POST', '/chargers/FL-201/calls/SetVariables', {
      setVariableData: [
        { attributeValue: SECRET_PASSWORD, component: { name: 'SecurityCtrlr' }, variable: { name: 'BasicAuthPassword' } },
        { attributeValue: '300', component: { name: 'OCPPCommCtrlr' }, variable: { name: 'HeartbeatInterval' } },
      ],
    });
    expect(setVariables.status).toBe(200);

    const fileA = join(dir, 'a.jsonl');
    const { text, lines } = await waitFor('the SetVariables reply in node A\'s frame log', () => {
      const log = readLog(fileA);
      return log.lines.some((line) => line.identity === 'FL-201' && line.direction === 'in' && line.message?.[0] === 3 && JSON.stringify(line.message).includes('setVariableResult'))
        ? log
        : null;
    });

    for (const line of lines) {
      expect(line).toEqual({
        direction: expect.stringMatching(/^(in|out)$/),
        identity: expect.stringMatching(/^FL-(16|201)$/),
        protocol: line.identity === 'FL-16' ? 'ocpp1.6' : 'ocpp2.0.1',
        nodeId: 'fl-a',
        raw: expect.any(String),
        message: JSON.parse(line.raw),
        at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      });
    }
    const frames16 = lines.filter((line) => line.identity === 'FL-16').map((line) => [line.direction, line.message]);
    expect(frames16).toEqual([
      ['in', [2, expect.any(String), 'BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' }]],
      ['out', [3, expect.any(String), expect.objectContaining({ status: 'Accepted', interval: 300 })]],
      ['in', [2, expect.any(String), 'Heartbeat', {}]],
      ['out', [3, expect.any(String), { currentTime: expect.any(String) }]],
      ['in', [2, expect.any(String), 'Authorize', { idTag: '***' }]],
      ['out', [3, expect.any(String), { idTagInfo: { status: 'Accepted' } }]],
      ['out', [2, expect.any(String), 'ChangeConfiguration', { key: 'AuthorizationKey', value: '***' }]],
      ['in', [3, expect.any(String), { status: 'Accepted' }]],
    ]);
    const frames201 = lines.filter((line) => line.identity === 'FL-201').map((line) => [line.direction, line.message]);
    expect(frames201).toEqual([
      ['in', [2, expect.any(String), 'Authorize', { idToken: { idToken: '***', type: 'ISO14443' } }]],
      ['out', [3, expect.any(String), { idTokenInfo: { status: 'Accepted' } }]],
      [
        'out',
        [
          2,
          expect.any(String),
          'SetVariables',
          {
            setVariableData: [
              { attributeValue: '***', component: { name: 'SecurityCtrlr' }, variable: { name: 'BasicAuthPassword' } },
              { attributeValue: '300', component: { name: 'OCPPCommCtrlr' }, variable: { name: 'HeartbeatInterval' } },
            ],
          },
        ],
      ],
      ['in', [3, expect.any(String), { setVariableResult: expect.any(Array) }]],
    ]);
    for (const secret of [SECRET_TAG, SECRET_TOKEN, SECRET_KEY, SECRET_PASSWORD]) expect(text).not.toContain(secret);
    // Node B held no socket: it wrote no frame.
    expect(readLog(join(dir, 'b.jsonl')).lines).toEqual([]);
  });
});
