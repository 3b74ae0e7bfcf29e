import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connectedChargePoint } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { CsmsProcess } from '../support/csms-process.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import type { RedisServer } from '../support/redis-server.js';

/**
 * A rolling upgrade (README, "Wire version"): five sample processes on one Redis speak five
 * cluster wire versions side by side (OCPP_WIRE_VERSION, tests only): 1 (the format before the
 * field), 2, 3 (replies batched: no envelope changed, so it writes format 2), 4 (this library:
 * commands packed, still format 2, so its calls still run on version 2 and 3 nodes, which never
 * get a packed entry) and 5 (a future one that changes a format). Calls run between every pair
 * at once; each ends in its reply or in a typed IncompatibleVersion refusal, never in a timeout.
 */

const VERSIONS = { v1: 1, v2: 2, v3: 3, v4: 4, v5: 5 } as const;
/** The envelope format a node of each version writes (3 and 4 write 2, see `writtenVersion`). */
const WRITES = { v1: 1, v2: 2, v3: 2, v4: 2, v5: 5 } as const;
type Name = keyof typeof VERSIONS;
const NAMES = Object.keys(VERSIONS) as Name[];
const ROUNDS = 5;

describe('cluster wire version (five sample processes, real Redis)', () => {
  let redis: RedisServer;
  const nodes = {} as Record<Name, CsmsProcess>;
  const chargers: RpcClient[] = [];
  const resets: Record<Name, number> = { v1: 0, v2: 0, v3: 0, v4: 0, v5: 0 };

  beforeAll(async () => {
    redis = await startRedisServer();
    // A call that is never answered fails the test by its timeout (20 s), not by hanging.
    const env = { REDIS_URL: redis.url, OCPP_PING_INTERVAL_MS: '0', OCPP_CALL_TIMEOUT_MS: '20000' };
    const started = await CsmsProcess.startTogether(NAMES.map((name) => [`wire-${name}`, { ...env, OCPP_WIRE_VERSION: String(VERSIONS[name]) }] as const));
    NAMES.forEach((name, index) => (nodes[name] = started[index]));
    for (const name of NAMES) {
      const charger = await connectedChargePoint(nodes[name].wsUrl, `CP-${name}`, { protocols: ['ocpp1.6'] });
      charger.handle('Reset', () => {
        resets[name]++;
        return { status: 'Accepted' };
      });
      chargers.push(charger);
    }
  }, 150_000);

  afterAll(async () => {
    await Promise.all(chargers.map((charger) => charger.close({ force: true }).catch(() => undefined)));
    await Promise.all(NAMES.map((name) => nodes[name]?.stop()));
    await stopAllRedisServers();
  });

  it('a node reads every format up to its own version, answers in the caller\'s, and refuses newer ones with a typed error', async () => {
    const pairs = NAMES.flatMap((from) => NAMES.map((to) => ({ from, to })));
    const answers = await Promise.all(
      Array.from({ length: ROUNDS }, () =>
        pairs.map(async ({ from, to }) => ({ from, to, ...(await nodes[from].http('POST', `/chargers/CP-${to}/calls/Reset`, { type: 'Soft' })) })),
      ).flat(),
    );
    for (const { from, to, status, body } of answers) {
      const caller = WRITES[from];
      const owner = VERSIONS[to];
      if (caller <= owner) {
        // Same node, or an owner that reads the caller's format: it answers in the caller's version.
        expect({ from, to, status, body }).toEqual({ from, to, status: 200, body: { result: { status: 'Accepted' } } });
      } else {
        expect({ from, to, status, body }).toEqual({
          from,
          to,
          status: 503,
          body: {
            error: 'IncompatibleVersion',
            message: expect.stringContaining(`cannot read cluster wire version ${caller}`),
            nodeId: `wire-${to}`,
            receivedVersion: caller,
            supportedVersion: owner,
          },
        });
      }
    }
    // A refused command never reached the charger: each got exactly the calls of callers whose format its node reads.
    expect(resets).toEqual({
      v1: ROUNDS * 1,
      v2: ROUNDS * 4,
      v3: ROUNDS * 4,
      v4: ROUNDS * 4,
      v5: ROUNDS * 5,
    });
  }, 60_000);

  it('a broadcast from the oldest node reaches every charger, each node reporting in its version', async () => {
    const before = { ...resets };
    const { status, body } = await nodes.v1.http('POST', '/broadcast/Reset?timeoutMs=20000', { type: 'Soft' });
    expect({ status, body }).toEqual({ status: 200, body: { delivered: 5, failed: 0, nodes: 5 } });
    expect(resets).toEqual({ v1: before.v1 + 1, v2: before.v2 + 1, v3: before.v3 + 1, v4: before.v4 + 1, v5: before.v5 + 1 });
  }, 60_000);

  it('a broadcast from this library\'s version reaches every node that reads format 2; the oldest reports a refusal', async () => {
    const before = { ...resets };
    const { status, body } = await nodes.v4.http('POST', '/broadcast/Reset?timeoutMs=20000', { type: 'Soft' });
    expect({ status, body }).toEqual({ status: 200, body: { delivered: 4, failed: 0, nodes: 5 } });
    expect(resets).toEqual({ v1: before.v1, v2: before.v2 + 1, v3: before.v3 + 1, v4: before.v4 + 1, v5: before.v5 + 1 });
  }, 60_000);

  it('a broadcast from the newest node ends with every node\'s report: the older ones report a refusal, not silence', async () => {
    const before = { ...resets };
    const { status, body } = await nodes.v5.http('POST', '/broadcast/Reset?timeoutMs=20000', { type: 'Soft' });
    expect(status).toBe(200);
    expect(body).toEqual({ delivered: 1, failed: 0, nodes: 5 });
    expect(resets).toEqual({ ...before, v5: before.v5 + 1 });
  }, 60_000);
});
