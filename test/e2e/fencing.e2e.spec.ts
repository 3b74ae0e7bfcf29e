import { Redis } from 'ioredis';
import { CsmsProcess } from '../support/csms-process.js';
import { RecordingCharger } from '../support/recording-charger.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import type { RedisServer } from '../support/redis-server.js';
import { allWhenSettled, sleep, waitFor, withTimeout } from '../support/wait.js';
import { startNatsServer, stopAllNatsServers, type NatsServer } from '../support/nats-server.js';

/**
 * Fencing, tried the way a hostile operator would: real sample processes on a real Redis or a
 * real NATS JetStream server, frozen with SIGSTOP, killed with SIGKILL, the server itself stalled
 * (Redis: DEBUG SLEEP, CLIENT PAUSE; NATS: SIGSTOP of nats-server). Every call
 * made through a node's HTTP API is recorded with its answer and the time of the answer; every
 * charger records each command it received and when. The promise under test: a command never
 * reaches a charger after its caller was told it failed, and an answer that says "not
 * delivered" is true.
 */

const NODE_TTL_MS = 1500;

interface CallRecord {
  tag: string;
  identity: string;
  status: number;
  body: any;
  answeredAt: number;
}

/** The server the nodes share, and how a test stalls it. */
interface Backend {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  env(): Record<string, string>;
  /** Ways to make the server stop answering for `ms` while every connection stays open. */
  stalls(): Array<[string, (ms: number) => Promise<unknown>]>;
}

function redisBackend(): Backend {
  let redis: RedisServer;
  let admin: Redis;
  return {
    name: 'real Redis',
    start: async () => {
      redis = await startRedisServer({ args: ['--enable-debug-command', 'yes'] });
      admin = new Redis(redis.port, { lazyConnect: true, maxRetriesPerRequest: 1 });
      admin.on('error', () => undefined);
      await admin.connect();
    },
    stop: async () => {
      admin.disconnect();
      await stopAllRedisServers();
    },
    env: () => ({ REDIS_URL: `redis://127.0.0.1:${redis.port}` }),
    stalls: () => [
      ['DEBUG SLEEP', (ms) => admin.call('DEBUG', 'SLEEP', String(ms / 1000))],
      ['CLIENT PAUSE WRITE', (ms) => admin.call('CLIENT', 'PAUSE', String(ms), 'WRITE').then(() => sleep(ms))],
    ],
  };
}

function natsBackend(): Backend {
  let server: NatsServer;
  return {
    name: 'real NATS JetStream',
    start: async () => {
      server = await startNatsServer();
    },
    stop: async () => {
      if (server.pid !== undefined) process.kill(server.pid, 'SIGCONT');
      await stopAllNatsServers();
    },
    env: () => ({ NATS_URL: server.url }),
    stalls: () => [
      [
        'SIGSTOP of nats-server',
        async (ms) => {
          process.kill(server.pid!, 'SIGSTOP');
          await sleep(ms);
          process.kill(server.pid!, 'SIGCONT');
        },
      ],
    ],
  };
}

describe.each([{ backend: redisBackend() }, { backend: natsBackend() }])('fencing (separate node processes, $backend.name)', ({ backend }) => {
  const processes: CsmsProcess[] = [];
  const chargers: RecordingCharger[] = [];
  let tagCounter = 0;

  function env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      ...backend.env(),
      OCPP_NODE_TTL_MS: String(NODE_TTL_MS),
      OCPP_CALL_TIMEOUT_MS: '20000',
      OCPP_DRAIN_WINDOW_MS: '200',
      OCPP_DRAIN_SETTLE_MS: '200',
      ...extra,
    };
  }

  async function node(nodeId: string, extra: Record<string, string> = {}): Promise<CsmsProcess> {
    const csms = await CsmsProcess.start(nodeId, env(extra));
    processes.push(csms);
    return csms;
  }

  async function charger(csms: CsmsProcess, identity: string, replyDelayMs: number | null): Promise<RecordingCharger> {
    const client = await RecordingCharger.connect(csms.wsUrl, identity, replyDelayMs);
    chargers.push(client);
    return client;
  }

  /** One DataTransfer through `via`'s HTTP API, tagged so the charger's record can be matched. */
  async function call(via: CsmsProcess, identity: string, timeoutMs = 20_000): Promise<CallRecord> {
    const tag = `t${++tagCounter}`;
    const { status, body } = await via.http(
      'POST',
      `/chargers/${encodeURIComponent(identity)}/calls/DataTransfer?timeoutMs=${timeoutMs}`,
      { vendorId: 'fencing', data: tag },
    );
    return { tag, identity, status, body, answeredAt: Date.now() };
  }

  async function visibleFrom(csms: CsmsProcess, identity: string, nodeId: string): Promise<boolean> {
    const { status, body } = await csms.http('GET', `/chargers/${encodeURIComponent(identity)}`);
    return status === 200 && body.nodeId === nodeId;
  }

  /** Every receipt of a call's tag by any charger, with its time. */
  function receipts(tag: string): number[] {
    return chargers.flatMap((client) => client.received.filter((received) => received.payload.data === tag).map((received) => received.at));
  }

  /** Calls whose answer was broken by what chargers saw: the violations the suite exists to find. */
  function violations(calls: CallRecord[]): string[] {
    const found: string[] = [];
    for (const record of calls) {
      const seen = receipts(record.tag);
      if (seen.length > 1) found.push(`${record.tag} reached a charger ${seen.length} times`);
      if (record.status === 200) continue;
      const late = seen.filter((at) => at > record.answeredAt);
      if (late.length > 0) {
        found.push(`${record.tag} reached ${record.identity} ${late[0] - record.answeredAt} ms after its caller was told ${record.status} ${JSON.stringify(record.body)}`);
      }
      const saidNotDelivered =
        (record.body?.error === 'NotConnected' && record.body.maybeDelivered === false) ||
        (record.body?.error === 'Timeout' && record.body.sent === false);
      if (saidNotDelivered && seen.length > 0) {
        found.push(`${record.tag} reached ${record.identity} although its caller was told it was not delivered: ${JSON.stringify(record.body)}`);
      }
    }
    return found;
  }

  beforeEach(() => backend.start(), 30_000);

  afterEach(async () => {
    for (const client of chargers.splice(0)) client.close();
    if (process.env.DEBUG_NODES) for (const csms of processes) console.log(csms.nodeId, csms.output.join('').slice(-6000));
    for (const csms of processes.splice(0)) {
      try {
        process.kill(csms.pid, 'SIGCONT');
      } catch {
        // already gone
      }
      await csms.kill9().catch(() => undefined);
    }
    await backend.stop();
  });

  it('a node frozen past its TTL sends nothing its survivor answered; it closes its sockets (1012) and rejoins', async () => {
    const [a, b] = await allWhenSettled([node('fence-a'), node('fence-b')]);
    const identities = Array.from({ length: 10 }, (_, i) => `FZ${i}`);
    // Slow chargers: commands queue up on node b behind one in-flight call each.
    const onB = await Promise.all(identities.map((identity) => charger(b, identity, 150)));
    for (const identity of identities) await waitFor(`${identity} on fence-b`, () => visibleFrom(a, identity, 'fence-b'));
    const calls = identities.flatMap((identity) => Array.from({ length: 10 }, () => call(a, identity)));
    await waitFor('every charger to be serving a command', () => onB.every((client) => client.received.length > 0));
    process.kill(b.pid, 'SIGSTOP');
    await sleep(NODE_TTL_MS * 4);
    process.kill(b.pid, 'SIGCONT');
    const records = await withTimeout(Promise.all(calls), 60_000, 'every caller to be answered');

    expect(violations(records)).toEqual([]);
    const failed = records.filter((record) => record.status !== 200);
    // The survivor answered what the frozen node held (otherwise this test proved nothing).
    expect(failed.length).toBeGreaterThan(0);
    // The frozen node learnt it was taken over: its chargers were told to go elsewhere.
    const codes = await withTimeout(Promise.all(onB.map((client) => client.closed)), 20_000, 'node b to close its sockets');
    expect(new Set(codes)).toEqual(new Set([1012]));
    // ...and it serves again under a fresh lease: a new charger on it is reachable from a.
    await waitFor('fence-b to be live again', async () => (await b.http('GET', '/health/live')).status === 200, { timeoutMs: 20_000 });
    await waitFor('fence-b to be ready again', async () => (await b.http('GET', '/health')).status === 200, { timeoutMs: 20_000 });
    const back = await charger(b, 'FZ-BACK', 0);
    await waitFor('FZ-BACK on fence-b', () => visibleFrom(a, 'FZ-BACK', 'fence-b'));
    const after = await call(a, 'FZ-BACK');
    expect(after).toMatchObject({ status: 200 });
    // It keeps its fresh lease (its heartbeat runs again), not just for the first TTL.
    await sleep(NODE_TTL_MS * 3);
    expect((await b.http('GET', '/health')).status).toBe(200);
    const later = await call(a, 'FZ-BACK');
    expect(later.status).toBe(200);
    expect(back.tags()).toEqual([after.tag, later.tag]);
    expect(back.isOpen).toBe(true);
  }, 120_000);

  it('a zombie whose node id another process took closes its sockets and is not live', async () => {
    const z1 = await node('zombie');
    const onZ1 = await Promise.all(Array.from({ length: 5 }, (_, i) => charger(z1, `ZB${i}`, 0)));
    process.kill(z1.pid, 'SIGSTOP');
    // A replacement with the same id waits for the frozen one's key to lapse, then takes the id.
    const z2 = await node('zombie');
    process.kill(z1.pid, 'SIGCONT');

    const codes = await withTimeout(Promise.all(onZ1.map((client) => client.closed)), 20_000, 'the zombie to close its sockets');
    expect(new Set(codes)).toEqual(new Set([1012]));
    const live = await z1.http('GET', '/health/live');
    expect(live.status).toBe(503);
    expect(JSON.stringify(live.body)).toContain('node id held by another process');
    expect((await z1.http('GET', '/health')).status).toBe(503);
    // The chargers can come back on the process that holds the id now, and are reachable.
    const again = await charger(z2, 'ZB0', 0);
    const result = await call(z2, 'ZB0');
    expect(result.status).toBe(200);
    expect(again.tags()).toEqual([result.tag]);
  }, 90_000);

  it('a node restarted after kill -9 answers the commands its dead process had read as maybe delivered', async () => {
    // The caller does not take over (its check runs once a minute): the restarted process answers.
    const [a, b] = await allWhenSettled([node('restart-a', { OCPP_TAKEOVER_INTERVAL_MS: '60000' }), node('restart-b')]);
    const identities = Array.from({ length: 5 }, (_, i) => `RS${i}`);
    // Silent chargers: what node b read stays in flight, unacknowledged.
    const onB = await Promise.all(identities.map((identity) => charger(b, identity, null)));
    for (const identity of identities) await waitFor(`${identity} on restart-b`, () => visibleFrom(a, identity, 'restart-b'));
    const calls = identities.flatMap((identity) => [call(a, identity), call(a, identity)]);
    await waitFor('every charger to have received its first command', () => onB.every((client) => client.received.length > 0));
    await b.kill9();
    await node('restart-b');
    const records = await withTimeout(Promise.all(calls), 40_000, 'every caller to be answered');

    expect(violations(records)).toEqual([]);
    for (const record of records) {
      expect(record.status).toBe(404);
      // Read by the dead process: it may have reached the charger, and the caller must know.
      expect(record.body).toMatchObject({ error: 'NotConnected', maybeDelivered: true });
    }
  }, 90_000);

  it.each(backend.stalls())('a stall of the server (%s) longer than the node TTL is no node death: no NotConnected for connected chargers, no takeover', async (_kind, stallFor) => {
    const [a, b] = await allWhenSettled([node('stall-a'), node('stall-b')]);
    const identities = Array.from({ length: 10 }, (_, i) => `ST${i}`);
    const onB = await Promise.all(identities.map((identity) => charger(b, identity, 0)));
    for (const identity of identities) await waitFor(`${identity} on stall-b`, () => visibleFrom(a, identity, 'stall-b'));
    // Let both nodes see Redis answer steadily first, as in production.
    await sleep(NODE_TTL_MS * 2);

    const records: CallRecord[] = [];
    let calling = true;
    const loops = identities.map(async (identity) => {
      while (calling) records.push(await call(a, identity, 8_000));
    });
    await sleep(500);
    const stall = stallFor(NODE_TTL_MS * 3);
    await sleep(300);
    // A burst issued while the server sleeps: every lookup is answered only after it wakes, when
    // every liveness key (b's too) has just lapsed, or no heartbeat was seen for a whole TTL.
    const burst = identities.flatMap((identity) => Array.from({ length: 15 }, () => call(a, identity, 8_000)));
    await stall;
    records.push(...(await withTimeout(Promise.all(burst), 30_000, 'the burst to be answered')));
    await sleep(NODE_TTL_MS * 2);
    calling = false;
    await withTimeout(Promise.all(loops), 30_000, 'the call loops to end');

    expect(violations(records)).toEqual([]);
    const notConnected = records.filter((record) => record.status === 404);
    expect(notConnected).toEqual([]);
    for (const record of records) expect([200, 503, 504]).toContain(record.status);
    // Nobody took node b over: its chargers were never closed, and they are served again.
    expect(onB.every((client) => client.isOpen)).toBe(true);
    const after = await call(a, 'ST0');
    expect(after.status).toBe(200);
  }, 90_000);
});
