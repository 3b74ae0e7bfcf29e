import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { connectedChargePoint } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { CsmsProcess } from '../support/csms-process.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import { withTimeout } from '../support/wait.js';

/**
 * What people copy from the sample, tried on the real sample process: the control API's token,
 * charge point passwords through the `authenticate` hook, strict `timeoutMs`, strict environment.
 */

const TOKEN = 'control-token-for-e2e';
const AUTHORIZED = { authorization: `Bearer ${TOKEN}` };

/** The HTTP status of an upgrade the server refused, or 101 when it opened. */
function upgradeStatus(url: string, protocol: string, headers: Record<string, string> = {}): Promise<number> {
  return withTimeout(
    new Promise<number>((resolve, reject) => {
      const socket = new WebSocket(url, protocol, { headers });
      socket.once('open', () => {
        socket.terminate();
        resolve(101);
      });
      socket.once('unexpected-response', (_request, response) => {
        resolve(response.statusCode ?? 0);
        socket.terminate();
      });
      socket.on('error', reject);
    }),
    10_000,
    `the upgrade of ${url}`,
  );
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const basic = (user: string, password: string): Record<string, string> => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});

describe('sample process hardening', () => {
  const processes: CsmsProcess[] = [];
  const clients: RpcClient[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'sample-hardening-'));
  const passwordsFile = join(dir, 'passwords');
  let guarded: CsmsProcess;
  let charger: RpcClient;
  const received: unknown[] = [];

  async function start(nodeId: string, env: Record<string, string>): Promise<CsmsProcess> {
    const csms = await CsmsProcess.start(nodeId, env);
    processes.push(csms);
    return csms;
  }

  beforeAll(async () => {
    writeFileSync(passwordsFile, '# identity:password\nPW-1:right-password\n\nPW-2:other:with:colons\n');
    guarded = await start('guarded', { CONTROL_TOKEN: TOKEN, OCPP_PASSWORDS_FILE: passwordsFile });
    charger = await connectedChargePoint(guarded.wsUrl, 'PW-1', { password: 'right-password' });
    clients.push(charger);
    charger.handle('Reset', ({ params }) => {
      received.push(params);
      return { status: 'Accepted' };
    });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close({ force: true }).catch(() => undefined)));
    await Promise.all(processes.map((csms) => csms.stop().catch(() => csms.kill9())));
    await stopAllRedisServers();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('CONTROL_TOKEN', () => {
    const controlRoutes: Array<[string, string, unknown]> = [
      ['GET', '/chargers', undefined],
      ['GET', '/chargers/PW-1', undefined],
      ['POST', '/chargers/PW-1/calls/Reset', { type: 'Soft' }],
      ['POST', '/broadcast/Reset', { type: 'Soft' }],
      ['POST', '/broadcast-batch/Reset', { identities: ['PW-1'], payload: { type: 'Soft' } }],
    ];

    it('every control route answers 401 without the bearer token, or with a wrong one, and reaches no charger', async () => {
      const wrong: Array<Record<string, string>> = [{}, { authorization: 'Bearer nope' }, { authorization: TOKEN }, { authorization: `Basic ${TOKEN}` }, { authorization: `Bearer ${TOKEN}x` }];
      for (const [method, path, body] of controlRoutes) {
        for (const headers of wrong) {
          const response = await guarded.http(method, path, body, headers);
          expect({ method, path, headers, ...response }).toMatchObject({ method, path, headers, status: 401, body: { error: 'Unauthorized' } });
        }
      }
      expect(received).toEqual([]);
    });

    it('the right token opens every control route', async () => {
      expect(await guarded.http('GET', '/chargers', undefined, AUTHORIZED)).toMatchObject({ status: 200, body: [{ identity: 'PW-1' }] });
      expect(await guarded.http('GET', '/chargers/PW-1', undefined, AUTHORIZED)).toMatchObject({ status: 200, body: { identity: 'PW-1' } });
      expect(await guarded.http('POST', '/chargers/PW-1/calls/Reset', { type: 'Soft' }, { authorization: `bearer ${TOKEN}` })).toEqual({
        status: 200,
        body: { result: { status: 'Accepted' } },
      });
      expect(await guarded.http('POST', '/broadcast/Reset', { type: 'Soft' }, AUTHORIZED)).toMatchObject({ status: 200, body: { delivered: 1 } });
      expect(
        await guarded.http('POST', '/broadcast-batch/Reset', { identities: ['PW-1'], payload: { type: 'Soft' } }, AUTHORIZED),
      ).toMatchObject({ status: 200, body: [{ identity: 'PW-1', status: 'fulfilled' }] });
      expect(received).toHaveLength(3);
    });

    it('/health, /health/live and /metrics stay open', async () => {
      for (const path of ['/health', '/health/live', '/metrics']) {
        expect({ path, status: (await fetch(`${guarded.httpUrl}${path}`)).status }).toEqual({ path, status: 200 });
      }
    });

    it('unset: the control API is open and the sample warns loudly at start', async () => {
      const open = await start('open-api', {});
      expect(open.output.join('')).toMatch(/CONTROL_TOKEN is not set: anyone who reaches this port/);
      expect(await open.http('GET', '/chargers')).toEqual({ status: 200, body: [] });
      expect(guarded.output.join('')).not.toMatch(/CONTROL_TOKEN is not set/);
    });
  });

  describe('OCPP_PASSWORDS_FILE (the authenticate hook)', () => {
    it('refuses a charge point with no password, a wrong one, another identity\'s, or an unknown identity (401)', async () => {
      const url = (identity: string) => `${guarded.wsUrl}/${identity}`;
      expect(await upgradeStatus(url('PW-1'), 'ocpp1.6')).toBe(401);
      expect(await upgradeStatus(url('PW-1'), 'ocpp1.6', basic('PW-1', 'wrong-password'))).toBe(401);
      expect(await upgradeStatus(url('PW-1'), 'ocpp1.6', basic('PW-1', 'right-passwor'))).toBe(401);
      expect(await upgradeStatus(url('PW-1'), 'ocpp1.6', basic('PW-2', 'other:with:colons'))).toBe(401);
      expect(await upgradeStatus(url('PW-9'), 'ocpp1.6', basic('PW-9', 'right-password'))).toBe(401);
      await expect(connectedChargePoint(guarded.wsUrl, 'PW-2', { password: 'right-password' })).rejects.toThrow(/Unauthorized|401/);
    });

    it('accepts the right password (the rest of the line after the first colon)', async () => {
      expect(await upgradeStatus(`${guarded.wsUrl}/PW-2`, 'ocpp1.6', basic('PW-2', 'other:with:colons'))).toBe(101);
      const second = await connectedChargePoint(guarded.wsUrl, 'PW-2', { password: 'other:with:colons', protocols: ['ocpp2.0.1'] });
      clients.push(second);
      expect(await second.call('Heartbeat', {})).toHaveProperty('currentTime');
    });
  });

  describe('timeoutMs', () => {
    it.each([' 5', '5 ', '0x10', '1e3', '', '1.5', '-1', '0', '300001', '+5', '５'])('%j is 400 ValidationError and reaches no charger', async (raw) => {
      const before = received.length;
      const path = `/chargers/PW-1/calls/Reset?timeoutMs=${encodeURIComponent(raw)}`;
      expect(await guarded.http('POST', path, { type: 'Soft' }, AUTHORIZED)).toMatchObject({
        status: 400,
        body: { error: 'ValidationError', parameter: 'timeoutMs' },
      });
      expect(await guarded.http('POST', `/broadcast/Reset?timeoutMs=${encodeURIComponent(raw)}`, { type: 'Soft' }, AUTHORIZED)).toMatchObject({
        status: 400,
        body: { error: 'ValidationError' },
      });
      expect(received.length).toBe(before);
    });

    it('a repeated timeoutMs is 400 too; plain decimal integers within the limit are taken', async () => {
      expect((await guarded.http('POST', '/chargers/PW-1/calls/Reset?timeoutMs=5&timeoutMs=6', { type: 'Soft' }, AUTHORIZED)).status).toBe(400);
      for (const raw of ['5000', '300000', '0010000']) {
        expect(await guarded.http('POST', `/chargers/PW-1/calls/Reset?timeoutMs=${raw}`, { type: 'Soft' }, AUTHORIZED)).toEqual({
          status: 200,
          body: { result: { status: 'Accepted' } },
        });
      }
    });
  });

  describe('environment', () => {
    it.each([
      ['OCPP_STREAM_MAX_LEN', '1e3'],
      ['OCPP_STREAM_MAX_LEN', '5'],
      ['OCPP_PING_INTERVAL_MS', ' 5'],
      ['OCPP_CALL_TIMEOUT_MS', '0x10'],
      ['OCPP_CALL_TIMEOUT_MS', '0'],
      ['OCPP_NODE_TTL_MS', 'soon'],
      ['OCPP_DRAIN_WINDOW_MS', '-1'],
      ['OCPP_REDIS_POOL_SIZE', '2.5'],
      ['OCPP_LAG_DOWN', '1e9'],
      ['PORT', '70000'],
    ])('%s=%j stops the start with an error naming the variable', async (name, value) => {
      // REDIS_URL only has to be set for the Redis variables to be read: nothing connects before the check.
      const failure = CsmsProcess.start(`bad-env-${name.toLowerCase().replace(/_/g, '-')}`, { REDIS_URL: 'redis://127.0.0.1:1', [name]: value });
      const message = `${name} must be a decimal integer from \\d+ to \\d+, got ${escapeRegExp(JSON.stringify(value))}`;
      await expect(failure).rejects.toThrow(new RegExp(`exited with 1 before listening:\\n${message}`));
    });

    it('a bad CONTROL_TOKEN or passwords file stops the start too, saying what is wrong', async () => {
      await expect(CsmsProcess.start('bad-token', { CONTROL_TOKEN: '' })).rejects.toThrow(/CONTROL_TOKEN is set but empty/);
      const malformed = join(dir, 'malformed');
      writeFileSync(malformed, 'PW-1:fine\nno-colon-here\n');
      await expect(CsmsProcess.start('bad-passwords', { OCPP_PASSWORDS_FILE: malformed })).rejects.toThrow(
        /OCPP_PASSWORDS_FILE .*malformed line 2: expected identity:password/,
      );
      await expect(CsmsProcess.start('missing-passwords', { OCPP_PASSWORDS_FILE: join(dir, 'absent') })).rejects.toThrow(
        /OCPP_PASSWORDS_FILE names a file that cannot be read/,
      );
    });

    it('OCPP_REDIS_PREFIX and OCPP_PING_INTERVAL_MS reach the module (OCPP_STREAM_MAX_LEN is taken too)', async () => {
      const redis = await startRedisServer();
      const csms = await start('env-node', {
        REDIS_URL: redis.url,
        OCPP_REDIS_PREFIX: 'fleet-e2e:',
        OCPP_STREAM_MAX_LEN: '50',
        OCPP_PING_INTERVAL_MS: '200',
      });
      const socket = new WebSocket(`${csms.wsUrl}/ENV-1`, 'ocpp1.6');
      try {
        // The server's pings arrive at the configured interval (the default is 30 s).
        await withTimeout(new Promise((resolve) => socket.once('ping', resolve)), 5_000, 'a ping from the server');
        const admin = new Redis(redis.url);
        try {
          const keys = await admin.keys('*');
          expect(keys.length).toBeGreaterThan(0);
          expect(keys.filter((key) => !key.startsWith('fleet-e2e:'))).toEqual([]);
        } finally {
          admin.disconnect();
        }
      } finally {
        socket.terminate();
      }
    });
  });
});
