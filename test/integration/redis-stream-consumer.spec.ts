import { Redis } from 'ioredis';
import type { ClusterMessage } from '../../lib/cluster/envelope.js';
import { RedisKeys } from '../../lib/redis/redis-keys.js';
import { StreamConsumer } from '../../lib/redis/stream-consumer.js';
import { StreamAppender } from '../../lib/redis/stream-appender.js';
import { command, commandCalls, gate, MemoryLogger, replies, startNode, type TestNode } from '../support/redis-fixtures.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { sleep, waitFor } from '../support/wait.js';
import { inboxOf } from '../../lib/cluster/address.js';
import { laneOf } from '../support/addresses.js';

describe('node inbox (stream consumer)', () => {
  let server: RedisServer;
  let redis: Redis;
  let blocking: Redis;
  const nodes: TestNode[] = [];
  const keys = new RedisKeys();

  beforeAll(async () => {
    server = await startRedisServer();
    redis = new Redis(server.port);
    blocking = new Redis(server.port, { maxRetriesPerRequest: null });
    for (const client of [redis, blocking]) client.on('error', () => undefined);
  });

  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((node) => node.adapter.disconnect()));
    await redis.flushall();
  });

  afterAll(async () => {
    redis?.disconnect();
    blocking?.disconnect();
    await stopAllRedisServers();
  });

  async function node(nodeId: string, options: Parameters<typeof startNode>[2] = {}): Promise<TestNode> {
    const started = await startNode(server.url, nodeId, options);
    nodes.push(started);
    return started;
  }

  it('reports real lag and pending entries under an unconsumed backlog, not the stream length', async () => {
    const sender = await node('S');
    const a = await node('A', { readBatchSize: 10, maxInFlight: 10 });
    const hold = gate();
    a.inbox.gate = hold.promise;
    const sent = Array.from({ length: 50 }, (_, i) => command('S', `CP${i}`));
    await sender.adapter.publishBatch(sent.map((message) => ({ to: laneOf('A', message), message })));

    await waitFor('A holds 10 in flight', () => a.inbox.messages.length === 10);
    await sleep(300); // reading stays paused at the in-flight limit
    let metrics = await a.adapter.metrics();
    expect(metrics).toMatchObject({ pendingMessages: 10, consumerLag: 40, streamLength: 50, inFlightHandlers: 10 });

    hold.open();
    await waitFor('all handled and acknowledged', async () => {
      metrics = await a.adapter.metrics();
      return metrics.pendingMessages === 0 && metrics.consumerLag === 0;
    });
    // (Not the stream length here: the reader trims acknowledged history within a second.)
    expect(metrics).toMatchObject({ received: 50, acked: 50 });
    // Handlers were started in stream order.
    expect(a.inbox.messages.map((message) => (message as { id: string }).id)).toEqual(sent.map((message) => message.id));
  });

  it('at maxInFlight, with every command held by a handler that never finishes, still reads the replies to its own calls', async () => {
    const owner = await node('S');
    const a = await node('A', { readBatchSize: 2, maxInFlight: 2 });
    a.inbox.holdCommands = true;
    await owner.adapter.publishBatch(Array.from({ length: 5 }, (_, i) => ({ to: inboxOf('A'), message: command('S', `CP${i}`) })));
    await waitFor('A holds maxInFlight commands', () => a.inbox.ofKind('command').length === 2);

    const answers = replies('S', 3);
    for (const answer of answers) await owner.adapter.publish(laneOf('A', answer), answer);
    await waitFor('A got the answers to its own calls', () => a.inbox.ofKind('reply').length === answers.length);
    expect(a.inbox.ofKind('reply')).toEqual(answers);
    expect(a.inbox.ofKind('command')).toHaveLength(2); // the inbox stayed paused at the limit

    // Replies are acknowledged at once; lag and pending are the commands' alone.
    await waitFor('replies acknowledged', async () => (await a.adapter.metrics()).pendingMessages === 2);
    expect(await a.adapter.metrics()).toMatchObject({ pendingMessages: 2, consumerLag: 3, inFlightHandlers: 2 });
  });

  it('takes the replies of one turn to it as one entry (one XADD, one acknowledgement) and hands each over in order', async () => {
    const owner = await node('S');
    const a = await node('A');
    const stats = async () => {
      const info = await redis.info('commandstats');
      return { xadd: commandCalls(info, 'xadd'), xack: commandCalls(info, 'xack') };
    };
    // Version 3 replies (their caller reads batches), each published on its own, in one turn.
    const answers = replies('S', 40).map((answer) => ({ ...answer, v: 3 }));
    const before = await stats();
    await Promise.all(answers.map((answer) => owner.adapter.publish(laneOf('A', answer), answer)));
    await waitFor('A got every answer', () => a.inbox.ofKind('reply').length === answers.length);
    await waitFor('acknowledged', async () => (await a.adapter.metrics()).acked >= 1);

    expect(a.inbox.ofKind('reply')).toEqual(answers);
    const after = await stats();
    expect(after.xadd - before.xadd).toBe(1);
    expect(after.xack - before.xack).toBe(1);
    expect(await a.adapter.metrics()).toMatchObject({ pendingMessages: 0, received: answers.length, acked: 1 });
  });

  it('acknowledges only when the handler settles (a rejected handler is acknowledged and counted)', async () => {
    const sender = await node('S');
    const a = await node('A');
    const hold = gate();
    let calls = 0;
    await a.adapter.unsubscribe('node');
    await a.adapter.subscribe('node', async () => {
      calls++;
      await hold.promise;
      throw new Error('boom');
    });
    await sender.adapter.publish(laneOf('A', command('S', 'CP1')), command('S', 'CP1'));
    await waitFor('delivered', () => calls === 1);
    expect((await a.adapter.metrics()).pendingMessages).toBe(1);
    hold.open();
    await waitFor('acknowledged', async () => (await a.adapter.metrics()).pendingMessages === 0);
    expect((await a.adapter.metrics()).handlerErrors).toBe(1);
  });

  it('hands a command whose deadline has passed to the handler too (the router answers it as timed out)', async () => {
    const sender = await node('S');
    const late = command('S', 'CP1', { deadline: Date.now() - 1 });
    const onTime = command('S', 'CP1');
    const a = await node('A');
    await sender.adapter.publishBatch([
      { to: inboxOf('A'), message: late },
      { to: inboxOf('A'), message: onTime },
    ]);
    await waitFor('both commands', () => a.inbox.messages.length === 2);
    expect(a.inbox.messages).toEqual([late, onTime]);
    await waitFor('both acknowledged', async () => (await a.adapter.metrics()).acked === 2);
  });

  it('counts a pending entry deleted before it was handled as lost (not malformed), and handles the rest', async () => {
    const streamKey = keys.stream('L');
    const appender = new StreamAppender(keys, { fallbackCap: 1000, ttlMs: 60_000 });
    await redis.xgroup('CREATE', streamKey, 'inbox', '0', 'MKSTREAM');
    const sent = Array.from({ length: 3 }, (_, i) => command('S', `CP${i}`));
    const ids = await appender.append(redis, 'L', streamKey, sent);
    // A previous run of node L read them, then someone deleted one before it was acknowledged.
    await redis.xreadgroup('GROUP', 'inbox', 'L', 'COUNT', 10, 'STREAMS', streamKey, '>');
    await redis.xdel(streamKey, ids[1]);
    const received: ClusterMessage[] = [];
    const logger = new MemoryLogger();
    const consumer = new StreamConsumer({
      streamKey,
      group: 'inbox',
      consumer: 'L',
      reader: () => blocking,
      writer: () => redis,
      handler: (message) => {
        received.push(message);
      },
      logger,
    });
    try {
      await consumer.start();
      await waitFor('all three acknowledged', () => consumer.acked === 3);
      expect(received).toEqual([sent[0], sent[2]]);
      expect(consumer.lost).toBe(1);
      expect(consumer.malformed).toBe(0);
      expect(logger.lines.some((line) => line.startsWith('warn') && line.includes(ids[1]))).toBe(true);
    } finally {
      await consumer.stop();
    }
  });

  it('computes lag from entries-read when Redis cannot report it (deletions in the stream)', async () => {
    const received: ClusterMessage[] = [];
    const hold = gate();
    const consumer = new StreamConsumer({
      streamKey: keys.stream('X'),
      group: 'inbox',
      consumer: 'X',
      reader: () => blocking,
      writer: () => redis,
      handler: (message) => {
        received.push(message);
        return hold.promise;
      },
      logger: new MemoryLogger(),
      batchSize: 2,
      maxInFlight: 2,
    });
    try {
      await consumer.start();
      const appender = new StreamAppender(keys, { fallbackCap: 1000, ttlMs: 60_000 });
      const ids = await appender.append(redis, 'X', keys.stream('X'), Array.from({ length: 6 }, (_, i) => command('S', `CP${i}`)));
      await waitFor('two in flight', () => received.length === 2);
      await redis.xdel(keys.stream('X'), ids[1]); // a tombstone at the delivered position: Redis's lag turns null
      const groups = (await redis.xinfo('GROUPS', keys.stream('X'))) as unknown[][];
      expect(groups[0][groups[0].indexOf('lag') + 1]).toBeNull();
      expect(await consumer.metrics()).toEqual({ pending: 2, lag: 4, length: 5 });
    } finally {
      hold.open();
      await consumer.stop();
    }
  });
});

describe('node inbox size', () => {
  let server: RedisServer;
  let redis: Redis;
  const nodes: TestNode[] = [];
  const keys = new RedisKeys();

  beforeAll(async () => {
    server = await startRedisServer();
    redis = new Redis(server.port);
    redis.on('error', () => undefined);
  });

  afterAll(async () => {
    await Promise.all(nodes.splice(0).map((node) => node.adapter.disconnect()));
    redis?.disconnect();
    await stopAllRedisServers();
  });

  it('trims acknowledged history, and a batch larger than streamMaxLen arrives whole', async () => {
    const sender = await startNode(server.url, 'S', { streamMaxLen: 100 });
    const a = await startNode(server.url, 'A', { streamMaxLen: 100 });
    nodes.push(sender, a);
    const batch = Array.from({ length: 1500 }, (_, i) => ({ to: inboxOf('A'), message: command('S', `CP${i}`) }));
    await sender.adapter.publishBatch(batch);
    await waitFor('all 1500 handled', () => a.inbox.messages.length === 1500);
    expect(a.inbox.messages).toEqual(batch.map((entry) => entry.message));
    await waitFor('history trimmed', async () => (await redis.xlen(keys.stream('A'))) < 200);
    const metrics = await a.adapter.metrics();
    expect(metrics).toMatchObject({ pendingMessages: 0, consumerLag: 0, received: 1500 });
  });
});
