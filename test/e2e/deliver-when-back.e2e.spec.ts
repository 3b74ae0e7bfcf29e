import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { RedisKeys } from '../../lib/redis/redis-keys.js';
import { chargePoint } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { CsmsProcess } from '../support/csms-process.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import type { RedisServer } from '../support/redis-server.js';
import { allWhenSettled, waitFor, withTimeout } from '../support/wait.js';

/**
 * `deliverWithinMs` end to end: sample CSMS processes on one real Redis, ocpp-rpc charge points.
 * A call for an offline charger waits in Redis until it connects to any node (then the caller
 * gets its reply) or the window ends (NotDelivered, and it is never sent afterwards).
 */

const NODE_ENV = { OCPP_NODE_TTL_MS: '2000', OCPP_CALL_TIMEOUT_MS: '20000' };
/** Tests that start a node of their own: a process start is slow on a loaded machine. */
const WITH_NODE_START_MS = 120_000;

describe('deliver when the charger is back (deliverWithinMs)', () => {
  let redis: RedisServer;
  let admin: Redis;
  let a: CsmsProcess;
  let b: CsmsProcess;
  const nodes: CsmsProcess[] = [];
  const clients: RpcClient[] = [];
  const keys = new RedisKeys();

  beforeAll(async () => {
    redis = await startRedisServer();
    admin = new Redis(redis.url);
    [a, b] = await allWhenSettled([node('dwb-a'), node('dwb-b')]);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close({ force: true }).catch(() => undefined)));
    await Promise.all(nodes.map((csms) => csms.stop()));
    admin?.disconnect();
    await stopAllRedisServers();
  });

  async function node(nodeId: string): Promise<CsmsProcess> {
    const csms = await CsmsProcess.start(nodeId, { REDIS_URL: redis.url, ...NODE_ENV });
    nodes.push(csms);
    return csms;
  }

  const parked = (identity: string) => admin.llen(keys.parked(identity));

  /** POST a DataTransfer carrying `data`; the query string holds deliverWithinMs / timeoutMs. */
  const call = (csms: CsmsProcess, identity: string, data: string, query = '') =>
    csms.http('POST', `/chargers/${identity}/calls/DataTransfer${query}`, { vendorId: 'dwb', data });

  /** A charge point recording each DataTransfer it receives; `answer: false` leaves them unanswered. */
  async function charger(csms: CsmsProcess, identity: string, received: string[], answer = true): Promise<RpcClient> {
    const client = chargePoint(csms.wsUrl, identity);
    clients.push(client);
    client.handle('DataTransfer', ({ params }) => {
      received.push(params.data);
      return answer ? { status: 'Accepted', data: `got ${params.data}` } : new Promise(() => undefined);
    });
    await withTimeout(client.connect(), 10_000, `${identity} to connect to ${csms.nodeId}`);
    return client;
  }

  /** The charger connects to b; a later command reaches it through the same inbox: only that one ever arrives. */
  async function expectOnlyLaterCommands(identity: string): Promise<void> {
    const received: string[] = [];
    await charger(b, identity, received);
    expect((await call(a, identity, 'fresh')).status).toBe(200);
    expect(received).toEqual(['fresh']);
  }

  /** A 404 NotDelivered answer, with nothing left parked. */
  async function expectNotDelivered(answer: { status: number; body: any }, identity: string): Promise<void> {
    expect(answer.status).toBe(404);
    expect(answer.body).toMatchObject({ error: 'NotDelivered', sent: false });
    expect(await parked(identity)).toBe(0);
  }

  it('reaches the charger when it connects to the other node, and the caller gets its reply', async () => {
    const pending = call(a, 'DWB-1', 'one', '?deliverWithinMs=30000');
    await waitFor('the call to be parked', async () => (await parked('DWB-1')) === 1);
    const received: string[] = [];
    await charger(b, 'DWB-1', received);
    expect(await pending).toEqual({ status: 200, body: { result: { status: 'Accepted', data: 'got one' } } });
    expect(received).toEqual(['one']);
    expect(await parked('DWB-1')).toBe(0);
  });

  it('answers NotDelivered when the window ends; a charger connecting later never receives it', async () => {
    await expectNotDelivered(await call(a, 'DWB-2', 'stale', '?deliverWithinMs=1500'), 'DWB-2');
    await expectOnlyLaterCommands('DWB-2');
  });

  it('keeps the order of three commands parked from two nodes', async () => {
    const answers: Promise<{ status: number; body: any }>[] = [];
    for (const [index, caller] of [a, b, a].entries()) {
      answers.push(call(caller, 'DWB-3', String(index + 1), '?deliverWithinMs=30000'));
      await waitFor(`command ${index + 1} to be parked`, async () => (await parked('DWB-3')) === index + 1);
    }
    const received: string[] = [];
    await charger(b, 'DWB-3', received);
    const bodies = (await Promise.all(answers)).map(({ status, body }) => ({ status, data: body.result?.data }));
    expect(bodies).toEqual([1, 2, 3].map((n) => ({ status: 200, data: `got ${n}` })));
    expect(received).toEqual(['1', '2', '3']);
  });

  it("still delivers a parked call when the caller's node is killed (its answer dies with it)", async () => {
    const caller = await node('dwb-caller-killed');
    const pending = call(caller, 'DWB-4', 'orphan', '?deliverWithinMs=30000').then(
      () => 'answered',
      () => 'caller died',
    );
    await waitFor('the call to be parked', async () => (await parked('DWB-4')) === 1);
    await caller.kill9();
    expect(await pending).toBe('caller died');

    const received: string[] = [];
    await charger(b, 'DWB-4', received);
    await waitFor('the charger to receive the orphaned command', () => received.length === 1);
    expect(received).toEqual(['orphan']);
    expect(await parked('DWB-4')).toBe(0);
  }, WITH_NODE_START_MS);

  it("answers NotDelivered when the caller's node stops gracefully, and never sends it", async () => {
    const caller = await node('dwb-caller-stopped');
    const pending = call(caller, 'DWB-5', 'withdrawn', '?deliverWithinMs=30000');
    await waitFor('the call to be parked', async () => (await parked('DWB-5')) === 1);
    const stopped = caller.stop();
    const answer = await pending;
    await stopped;
    await expectNotDelivered(answer, 'DWB-5');
    await expectOnlyLaterCommands('DWB-5');
  }, WITH_NODE_START_MS);

  it("tells the caller 'maybe delivered' when the charger's node dies after taking it, and never sends it again", async () => {
    const owner = await node('dwb-owner-killed');
    const pending = call(a, 'DWB-6', 'unanswered', '?deliverWithinMs=30000&timeoutMs=20000');
    await waitFor('the call to be parked', async () => (await parked('DWB-6')) === 1);
    const first: string[] = [];
    await charger(owner, 'DWB-6', first, false);
    await waitFor('the charger to receive it', () => first.length === 1);
    await owner.kill9();
    const answer = await pending;
    expect(answer.status).toBe(404);
    expect(answer.body).toMatchObject({ error: 'NotConnected', maybeDelivered: true });

    await expectOnlyLaterCommands('DWB-6');
    expect(first).toEqual(['unanswered']);
  }, WITH_NODE_START_MS);

  it('delivers at most once when the charger connects to both nodes in quick succession', async () => {
    const pending = call(a, 'DWB-7', 'once', '?deliverWithinMs=30000');
    await waitFor('the call to be parked', async () => (await parked('DWB-7')) === 1);
    const onA: string[] = [];
    const onB: string[] = [];
    await Promise.all([charger(a, 'DWB-7', onA), charger(b, 'DWB-7', onB)]);
    const answer = await pending;
    // Answered by the socket that got it, or "maybe delivered" if that socket was replaced mid-call.
    expect(answer.status === 200 || (answer.status === 404 && answer.body.maybeDelivered === true)).toBe(true);
    expect(await parked('DWB-7')).toBe(0);
    expect([...onA, ...onB]).toEqual(['once']);
  });
});
