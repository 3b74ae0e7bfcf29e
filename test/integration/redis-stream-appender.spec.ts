import { Redis } from 'ioredis';
import type { ClusterMessage } from '../../lib/cluster/envelope.js';
import { InboxFullError } from '../../lib/protocol/errors.js';
import { RedisKeys } from '../../lib/redis/redis-keys.js';
import { StreamAppender } from '../../lib/redis/stream-appender.js';
import { decodeEntryFields, decodeEntryMessages, entriesOf } from '../../lib/redis/stream-publisher.js';
import { command, commandCalls, replies } from '../support/redis-fixtures.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';

describe('stream appender (appends of one turn share one write; a full inbox refuses, never trims)', () => {
  let server: RedisServer;
  let redis: Redis;
  const keys = new RedisKeys();
  const inbox = keys.stream('A');

  beforeAll(async () => {
    server = await startRedisServer();
    // Like the adapter's own writers.
    redis = new Redis(server.port, { enableAutoPipelining: true });
    redis.on('error', () => undefined);
  });

  afterEach(async () => {
    await redis.flushall();
  });

  afterAll(async () => {
    redis?.disconnect();
    await stopAllRedisServers();
  });

  const appenderWithCap = (fallbackCap: number) => new StreamAppender(keys, { fallbackCap, ttlMs: 60_000 });
  const commands = (count: number) => Array.from({ length: count }, (_, i) => command('S', `CP${i}`));

  async function readAll(streamKey: string): Promise<ClusterMessage[]> {
    return entriesOf(await redis.xread('STREAMS', streamKey, '0')).map((entry) => decodeEntryFields(entry.fields)!);
  }

  it('appends the messages of many callers in call order, each getting its own entry ids, and renews the TTL', async () => {
    const appender = appenderWithCap(1000);
    const messages = commands(20);
    const ids = await Promise.all([
      appender.append(redis, 'A', inbox, messages.slice(0, 1)),
      appender.append(redis, 'A', inbox, messages.slice(1, 15)),
      appender.append(redis, 'A', inbox, messages.slice(15)),
    ]);

    expect(ids.map((own) => own.length)).toEqual([1, 14, 5]);
    const entries = entriesOf(await redis.xread('STREAMS', inbox, '0'));
    expect(entries.map((entry) => entry.id)).toEqual(ids.flat());
    expect(entries.map((entry) => decodeEntryFields(entry.fields))).toEqual(messages);
    expect(await redis.pttl(inbox)).toBeGreaterThan(50_000);
  });

  it('keeps every payload byte for byte, newlines, commas and non-ASCII included, across admitted and refused requests of one run', async () => {
    const appender = appenderWithCap(3);
    await redis.xgroup('CREATE', inbox, 'inbox', '0', 'MKSTREAM');
    const awkward = [1, 2, 3, 4, 5].map((n) =>
      command('S', `CP${n}`, { payload: { vendorId: 'x', data: `line one\nline two\r\n,\n\n"quoted",\\n literal ${n} — ünïcødé 🚗\u2028` } }),
    );
    // One turn, one script run: the first two admitted (room for 3), the next two too (2 < 3
    // queued), the fifth refused; every message lands in its own entry, intact.
    const first = appender.append(redis, 'A', inbox, awkward.slice(0, 2));
    const second = appender.append(redis, 'A', inbox, awkward.slice(2, 4));
    const third = appender.append(redis, 'A', inbox, awkward.slice(4));

    await expect(first).resolves.toHaveLength(2);
    await expect(second).resolves.toHaveLength(2);
    await expect(third).rejects.toBeInstanceOf(InboxFullError);
    expect(await readAll(inbox)).toEqual(awkward.slice(0, 4));
  });

  it('fails only the callers whose own messages were refused', async () => {
    const appender = appenderWithCap(1000);
    await redis.set('{n:B}:stream', 'x');
    const refused = appender.append(redis, 'B', '{n:B}:stream', [command('S', 'CP1')]);
    const accepted = appender.append(redis, 'A', inbox, [command('S', 'CP2')]);

    await expect(refused).rejects.toThrow(/WRONGTYPE/);
    await expect(accepted).resolves.toHaveLength(1);
  });

  it('refuses commands once unread plus unacknowledged ones reach the cap, and never trims an unread one', async () => {
    const appender = appenderWithCap(10);
    await redis.xgroup('CREATE', inbox, 'inbox', '0', 'MKSTREAM');
    const sent = commands(30);
    const results = await Promise.allSettled(sent.map((message) => appender.append(redis, 'A', inbox, [message])));

    const refused = results.filter((result) => result.status === 'rejected').map((result) => (result as PromiseRejectedResult).reason);
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(10);
    expect(refused).toHaveLength(20);
    for (const error of refused) {
      expect(error).toBeInstanceOf(InboxFullError);
      expect(error).toMatchObject({ code: 'OCPP_INBOX_FULL', sent: false, nodeId: 'A', queued: 10, limit: 10 });
    }
    // Exactly the admitted ones, in order: nothing trimmed, nothing refused slipped in.
    expect(await readAll(inbox)).toEqual(sent.slice(0, 10));

    // Read but not acknowledged still counts; acknowledged frees room.
    const read = entriesOf(await redis.xreadgroup('GROUP', 'inbox', 'A', 'COUNT', 4, 'STREAMS', inbox, '>'));
    await expect(appender.append(redis, 'A', inbox, [command('S', 'LATE')])).rejects.toBeInstanceOf(InboxFullError);
    await redis.xack(inbox, 'inbox', ...read.slice(0, 3).map((entry) => entry.id));
    await expect(appender.append(redis, 'A', inbox, commands(3))).resolves.toHaveLength(3);
    await expect(appender.append(redis, 'A', inbox, [command('S', 'LATE')])).rejects.toBeInstanceOf(InboxFullError);
  });

  it("applies the owner's cap, not the writer's", async () => {
    const bigWriter = appenderWithCap(1000);
    await redis.set(keys.inboxCap('A'), 5);
    const results = await Promise.allSettled(commands(8).map((message) => bigWriter.append(redis, 'A', inbox, [message])));
    expect(results.map((result) => result.status)).toEqual([...Array(5).fill('fulfilled'), ...Array(3).fill('rejected')]);
  });

  it('counts every entry as unread before the owner created its group', async () => {
    const appender = appenderWithCap(10);
    await appender.append(redis, 'A', inbox, commands(10));
    await expect(appender.append(redis, 'A', inbox, commands(1))).rejects.toBeInstanceOf(InboxFullError);
  });

  it('admits a batch whole while there is room, and never refuses evictions or replies', async () => {
    const appender = appenderWithCap(10);
    await appender.append(redis, 'A', inbox, commands(9));
    await expect(appender.append(redis, 'A', inbox, commands(5))).resolves.toHaveLength(5);
    await expect(appender.append(redis, 'A', inbox, commands(5))).rejects.toBeInstanceOf(InboxFullError);
    const evict: ClusterMessage = { kind: 'evict', identity: 'CP1', epoch: 1, newOwner: 'B' };
    await expect(appender.append(redis, 'A', inbox, [evict])).resolves.toHaveLength(1);
    await expect(appender.append(redis, 'A', keys.replies('A'), replies('B', 50))).resolves.toHaveLength(50);
    // The same through a client that does not auto-pipeline (a user's own connection): one pipeline.
    const plain = new Redis(server.port);
    try {
      const ids = await appender.append(plain, 'A', keys.replies('A'), replies('C', 5));
      expect(ids).toHaveLength(5);
      expect(entriesOf(await redis.xread('STREAMS', keys.replies('A'), '0')).slice(-5).map((entry) => entry.id)).toEqual(ids);
      await expect(appender.append(plain, 'A', inbox, commands(1))).rejects.toBeInstanceOf(InboxFullError);
    } finally {
      plain.disconnect();
    }
    expect(await redis.xlen(keys.replies('A'))).toBe(55);
    expect(await redis.pttl(keys.replies('A'))).toBeGreaterThan(50_000);
  });

  describe('replies to a node that reads them batched (wire version 3 and newer)', () => {
    const repliesKey = keys.replies('A');
    const xadds = async (): Promise<number> => commandCalls(await redis.info('commandstats'), 'xadd');
    const batchable = (count: number, v = 3) => replies('B', count).map((reply) => ({ ...reply, v }));

    it('share one entry (one XADD) per turn and stream, in the order they were asked for', async () => {
      const appender = appenderWithCap(10);
      const sent = batchable(30);
      const before = await xadds();
      // Each reply appended on its own, as each command's answer is, all in one turn.
      const ids = await Promise.all(sent.map((reply) => appender.append(redis, 'A', repliesKey, [reply])));

      expect((await xadds()) - before).toBe(1);
      expect(new Set(ids.flat()).size).toBe(1);
      const entries = entriesOf(await redis.xread('STREAMS', repliesKey, '0'));
      expect(entries).toHaveLength(1);
      expect(decodeEntryMessages(entries[0].fields)).toEqual(sent);
      expect(await redis.pttl(repliesKey)).toBeGreaterThan(50_000);
    });

    it('a single reply stays a plain entry; a turn with more than an entry holds takes several', async () => {
      const appender = appenderWithCap(10);
      const [alone] = batchable(1);
      await appender.append(redis, 'A', repliesKey, [alone]);
      const many = batchable(250);
      const before = await xadds();
      await Promise.all(many.map((reply) => appender.append(redis, 'A', repliesKey, [reply])));

      expect((await xadds()) - before).toBe(3);
      const entries = entriesOf(await redis.xread('STREAMS', repliesKey, '0'));
      expect(decodeEntryFields(entries[0].fields)).toEqual(alone);
      expect(entries.slice(1).map((entry) => decodeEntryMessages(entry.fields)!.length)).toEqual([100, 100, 50]);
      expect(entries.slice(1).flatMap((entry) => decodeEntryMessages(entry.fields))).toEqual(many);
    });

    it('never to a receiver of an older version: its replies stay one entry each, as it reads them', async () => {
      const appender = appenderWithCap(10);
      const sent = [...batchable(5, 2), ...replies('B', 5)];
      const before = await xadds();
      await Promise.all(sent.map((reply) => appender.append(redis, 'A', repliesKey, [reply])));

      expect((await xadds()) - before).toBe(10);
      expect(await readAll(repliesKey)).toEqual(sent);
    });
  });
});
