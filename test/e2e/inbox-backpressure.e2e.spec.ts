import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { InboxFullError, OcppPrometheusMetrics, RedisAdapter } from '../../lib/index.js';
import { OCPP_CLUSTER_ADAPTER } from '../../lib/transport.js';
import { INBOX_GROUP } from '../../lib/redis/redis-keys.js';
import { entriesOf, pairsOf } from '../../lib/redis/stream-publisher.js';
import { connectedChargePoint } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { startModuleApp } from '../support/ocpp-test-app.js';
import type { TestApp } from '../support/ocpp-test-app.js';
import { gate } from '../support/redis-fixtures.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import type { RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

const CAP = 20;
const IN_FLIGHT = 5;
const CALLS = 400;
const CHARGERS = 10;

type Outcome = { tag: string; result?: unknown; error?: unknown };

describe('a node whose inbox is at its cap, with slow charge points', () => {
  let redis: RedisServer;
  let raw: Redis;
  let owner: TestApp;
  let caller: TestApp;
  const clients: RpcClient[] = [];
  const chargersAnswer = gate();
  /** Tag of every DataTransfer a charge point received. */
  const received: string[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
    raw = new Redis(redis.port);
    raw.on('error', () => undefined);
    // The cap is the owner's: the caller's own streamMaxLen (the default 10,000) does not apply.
    owner = await startModuleApp({
      nodeId: 'inbox-owner',
      redis: { url: redis.url, streamMaxLen: CAP, maxInFlight: IN_FLIGHT, readBatchSize: IN_FLIGHT },
    });
    caller = await startModuleApp({ nodeId: 'inbox-caller', redis: { url: redis.url } });
    for (let i = 0; i < CHARGERS; i++) {
      const identity = `SLOW-${i}`;
      const client = await connectedChargePoint(owner.wsUrl, identity);
      clients.push(client);
      client.handle('DataTransfer', async ({ params }) => {
        received.push(String(params.data));
        await chargersAnswer.promise;
        return { status: 'Accepted', data: params.data };
      });
      await waitFor(`${identity} seen by the caller`, async () => (await caller.service.getPresence(identity))?.nodeId === 'inbox-owner');
    }
  });

  afterAll(async () => {
    chargersAnswer.open();
    await Promise.all(clients.map((client) => client.close({ force: true }).catch(() => undefined)));
    for (const app of [caller, owner]) await app?.close();
    raw?.disconnect();
    await stopAllRedisServers();
  });

  /** What XINFO and XRANGE say is in the owner's streams after the group's last delivered entry. */
  async function trueUnread(): Promise<number> {
    const adapter = owner.app.get<RedisAdapter>(OCPP_CLUSTER_ADAPTER);
    let unread = 0;
    for (const streamKey of [adapter.keys.stream('inbox-owner'), adapter.keys.replies('inbox-owner')]) {
      const group = ((await raw.xinfo('GROUPS', streamKey)) as unknown[]).map(pairsOf).find((info) => info.name === INBOX_GROUP)!;
      const after = entriesOf(await raw.xread('COUNT', 100_000, 'STREAMS', streamKey, String(group['last-delivered-id'])));
      unread += after.length;
    }
    return unread;
  }

  it('refuses what does not fit at once (sent: false, counted), delivers the rest, and reports the true lag', async () => {
    const outcomes: Outcome[] = [];
    const calls = Array.from({ length: CALLS }, (_, i) => {
      const tag = `call-${i}`;
      return caller.service
        .sendToClient(`SLOW-${i % CHARGERS}`, 'DataTransfer', { vendorId: 'test', data: tag }, { timeoutMs: 60_000 })
        .then(
          (result) => outcomes.push({ tag, result }),
          (error: unknown) => outcomes.push({ tag, error }),
        );
    });

    // While the charge points hold every call they got, the refused callers are already answered.
    // (Before: the 380 trimmed commands' callers waited out their 60 s and heard "sent, no answer".)
    await waitFor('every refused caller answered while the charge points hold', () => outcomes.length >= CALLS - CAP, { timeoutMs: 20_000 });
    await waitFor('owner at maxInFlight', async () => (await owner.service.metrics()).adapter.inFlightHandlers === IN_FLIGHT);
    const refused = [...outcomes];
    expect(refused).toHaveLength(CALLS - CAP);
    for (const { error } of refused) {
      expect(error).toBeInstanceOf(InboxFullError);
      expect(error).toMatchObject({ code: 'OCPP_INBOX_FULL', sent: false, nodeId: 'inbox-owner', limit: CAP });
    }

    const callerMetrics = await caller.service.metrics();
    expect(callerMetrics.adapter.commandsRefused).toBe(refused.length);
    const prometheus = await caller.app.get(OcppPrometheusMetrics).text();
    expect(prometheus.body).toMatch(new RegExp(`^ocpp_inbox_commands_refused_total ${refused.length}$`, 'm'));
    expect(prometheus.body).toMatch(new RegExp(`^ocpp_outbound_calls_total\\{action="DataTransfer",route="remote",outcome="inbox_full"\\} ${refused.length}$`, 'm'));

    // The owner's lag is what is really unread: the admitted commands it has not read yet.
    const held = await owner.service.metrics();
    const unread = await trueUnread();
    expect(held.redisConsumerLag.lag).toBe(unread);
    expect(unread).toBe(CAP - IN_FLIGHT);
    expect(held.redisConsumerLag.pendingMessages).toBe(IN_FLIGHT);

    chargersAnswer.open();
    await Promise.all(calls);
    const delivered = outcomes.filter((outcome) => outcome.error === undefined);
    expect(delivered).toHaveLength(CAP);
    for (const { tag, result } of delivered) expect(result).toEqual({ status: 'Accepted', data: tag });

    // Once the owner's inbox is empty nothing can reach a charge point any more.
    await waitFor('owner inbox empty', async () => {
      const { redisConsumerLag } = await owner.service.metrics();
      return redisConsumerLag.lag === 0 && redisConsumerLag.pendingMessages === 0;
    });
    expect(await trueUnread()).toBe(0);
    expect([...received].sort()).toEqual(delivered.map((outcome) => outcome.tag).sort());
    const refusedTags = new Set(refused.map((outcome) => outcome.tag));
    expect(received.filter((tag) => refusedTags.has(tag))).toEqual([]);
  }, 90_000);
});
