import { Redis } from 'ioredis';
import { RedisKeys } from '../../lib/redis/redis-keys.js';
import { CsmsProcess } from '../support/csms-process.js';
import { RecordingCharger } from '../support/recording-charger.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { allWhenSettled, sleep, waitFor, withTimeout } from '../support/wait.js';

/**
 * The chaos checker's `not-connected-while-connected`: a caller answered a definitive
 * NotConnected (404) for a charge point whose socket was open and stayed open. A caller may say
 * "not connected" only when presence proves it; each race below is made exact and a caller
 * asks right then (separate node processes, real Redis).
 */

const NODE_TTL_MS = 2000;

describe('a definitive NotConnected needs proof', () => {
  let redis: RedisServer;
  let admin: Redis;
  const keys = new RedisKeys();
  const processes: CsmsProcess[] = [];
  const chargers: RecordingCharger[] = [];
  let tagCounter = 0;

  async function node(nodeId: string, takeoverIntervalMs = 60_000, ttlMs = NODE_TTL_MS): Promise<CsmsProcess> {
    const csms = await CsmsProcess.start(nodeId, {
      REDIS_URL: `redis://127.0.0.1:${redis.port}`,
      OCPP_NODE_TTL_MS: String(ttlMs),
      OCPP_TAKEOVER_INTERVAL_MS: String(takeoverIntervalMs),
      OCPP_DRAIN_WINDOW_MS: '200',
      OCPP_DRAIN_SETTLE_MS: '200',
    });
    processes.push(csms);
    return csms;
  }

  async function visibleFrom(csms: CsmsProcess, identity: string, nodeId: string): Promise<boolean> {
    const { status, body } = await csms.http('GET', `/chargers/${encodeURIComponent(identity)}`);
    return status === 200 && body.nodeId === nodeId;
  }

  function dataTransfer(via: CsmsProcess, identity: string, tag: string) {
    return via.http('POST', `/chargers/${encodeURIComponent(identity)}/calls/DataTransfer?timeoutMs=10000`, { vendorId: 'lapse', data: tag });
  }

  beforeEach(async () => {
    redis = await startRedisServer();
    admin = new Redis(redis.port, { maxRetriesPerRequest: 1 });
    admin.on('error', () => undefined);
  }, 30_000);

  afterEach(async () => {
    for (const client of chargers.splice(0)) client.close();
    // SIGKILL ends a frozen process too.
    await Promise.all(processes.splice(0).map((csms) => csms.kill9().catch(() => undefined)));
    admin.disconnect();
    await stopAllRedisServers();
  });

  /**
   * The owner only let its lease lapse (a freeze, a stall of its Redis shard, a failover) and
   * nobody took it over: it takes its key back and its sockets stay open. Made exact: the owner
   * is frozen and its liveness key deleted; no survivor takes it over (checks once a minute).
   */
  it('owner lapsed, not taken over: a call is unavailable, a batch waits in its inbox; the socket stays open and is served once the node is back', async () => {
    const [a, b] = await allWhenSettled([node('lapse-a'), node('lapse-b')]);
    const onB = await RecordingCharger.connect(b.wsUrl, 'LP1', 0);
    chargers.push(onB);
    // Read in Redis, not through lapse-a: a caller that just saw lapse-b alive may reuse that for a moment.
    await waitFor('LP1 registered for lapse-b', async () => (await admin.hget(keys.presence('LP1'), 'node')) === 'lapse-b');

    process.kill(b.pid, 'SIGSTOP');
    // The lapse without waiting a TTL: nobody took lapse-b over, its holder record still names it.
    expect(await admin.del(keys.alive('lapse-b'))).toBe(1);
    const single = await dataTransfer(a, 'LP1', `t${++tagCounter}`);
    const batchTag = `t${++tagCounter}`;
    const batch = a.http('POST', '/broadcast-batch/DataTransfer?timeoutMs=10000', { identities: ['LP1'], payload: { vendorId: 'lapse', data: batchTag } });
    batch.catch(() => undefined); // awaited below; a failed expectation first must not leave it unhandled
    process.kill(b.pid, 'SIGCONT');

    expect(single.status).not.toBe(404);
    expect(single).toMatchObject({ status: 503, body: { error: 'Unavailable' } });
    expect(single.body.message).toContain('lapse-b cannot prove its lease and was not taken over');
    const batchAnswer = await withTimeout(batch, 20_000, 'the batch to be answered');
    expect(batchAnswer.status).toBe(200);
    // Its command went to lapse-b's inbox: served if lapse-b had its lease back when it read it,
    // else refused there as not sent. Never "not connected".
    const [entry] = batchAnswer.body;
    const served = entry.status === 'fulfilled';
    if (served) expect(entry).toEqual({ identity: 'LP1', status: 'fulfilled', result: { status: 'Accepted', data: batchTag } });
    else expect(entry).toMatchObject({ identity: 'LP1', status: 'rejected', error: { error: 'Unavailable' } });

    // lapse-b takes its key back (nobody took it over) and lapse-a sees it alive again.
    await waitFor('lapse-b to hold its key again', async () => (await admin.exists(keys.alive('lapse-b'))) === 1, { timeoutMs: 20_000 });
    await waitFor('lapse-a to see LP1 on lapse-b again', () => visibleFrom(a, 'LP1', 'lapse-b'), { timeoutMs: 20_000 });
    const afterTag = `t${++tagCounter}`;
    const after = await dataTransfer(a, 'LP1', afterTag);
    expect(after).toMatchObject({ status: 200, body: { result: { data: afterTag } } });
    // What was refused never reached the charger; nothing was closed.
    expect(onB.tags()).toEqual(served ? [batchTag, afterTag] : [afterTag]);
    expect(onB.isOpen).toBe(true);
  }, 90_000);

  it('owner taken over by a survivor: its chargers are definitively not connected', async () => {
    const [a, b] = await allWhenSettled([node('gone-a', 500), node('gone-b')]);
    const onB = await RecordingCharger.connect(b.wsUrl, 'GN1', 0);
    chargers.push(onB);
    await waitFor('GN1 on gone-b, seen from gone-a', () => visibleFrom(a, 'GN1', 'gone-b'));

    process.kill(b.pid, 'SIGSTOP');
    await waitFor('gone-a to take gone-b over', async () => (await admin.get(keys.holder('gone-b')))?.startsWith('taken-over-by:gone-a') ?? false, {
      timeoutMs: 20_000,
    });
    const answer = await dataTransfer(a, 'GN1', `t${++tagCounter}`);
    process.kill(b.pid, 'SIGCONT');

    expect(answer).toMatchObject({ status: 404, body: { error: 'NotConnected', maybeDelivered: false } });
    // gone-b learns it was taken over and sends its chargers elsewhere.
    expect(await withTimeout(onB.closed, 20_000, 'gone-b to close its socket')).toBe(1012);
    expect(onB.tags()).toEqual([]);
  }, 90_000);

  /**
   * A charge point moves: its new handshake on node c claims presence before its socket opens, and
   * a caller on c reads presence between the two. Presence names c, c has no socket yet, and the
   * old socket on b is still open. Made exact: Redis holds every command for a moment, so the
   * claim and the caller's presence read run back to back when it lets go, and c sees the read
   * (one round trip) before its claim (two) completes the handshake.
   */
  it('charge point connecting to the asked node: the caller waits for its socket and gets its answer, never "not connected"', async () => {
    const [b, c] = await allWhenSettled([node('move-b', 60_000, 6000), node('move-c', 60_000, 6000)]);
    const onB = await RecordingCharger.connect(b.wsUrl, 'MV1', 0);
    chargers.push(onB);
    await waitFor('MV1 registered for move-b', async () => (await admin.hget(keys.presence('MV1'), 'node')) === 'move-b');

    await admin.call('CLIENT', 'PAUSE', '1500', 'ALL');
    const moving = RecordingCharger.connect(c.wsUrl, 'MV1', 0);
    // The handshake reaches move-c (and its claim waits in Redis) before the call does.
    await sleep(300);
    const duringTag = `t${++tagCounter}`;
    const answer = await dataTransfer(c, 'MV1', duringTag);
    const onC = await withTimeout(moving, 20_000, 'MV1 to open its socket on move-c');
    chargers.push(onC);

    // Waited for the new socket (the newest connection), then delivered there.
    expect(answer).toMatchObject({ status: 200, body: { result: { data: duringTag } } });
    // The move completes: the old socket is closed, the new one is served.
    expect(await withTimeout(onB.closed, 20_000, 'move-b to close the older socket')).toBe(1000);
    const afterTag = `t${++tagCounter}`;
    expect(await dataTransfer(c, 'MV1', afterTag)).toMatchObject({ status: 200, body: { result: { data: afterTag } } });
    expect(onB.tags()).toEqual([]);
    expect(onC.tags()).toEqual([duringTag, afterTag]);
  }, 90_000);
});
