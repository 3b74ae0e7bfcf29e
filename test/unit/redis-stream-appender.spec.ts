import { Redis } from 'ioredis';
import { StreamAppender } from '../../lib/redis/stream-appender.js';
import { decodeEntryFields, entriesOf } from '../../lib/redis/stream-publisher.js';
import { command } from '../support/redis-fixtures.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';

describe('stream appender (appends of one turn share one write)', () => {
  let server: RedisServer;
  let redis: Redis;
  const limits = { maxLen: 1000, ttlMs: 60_000 };

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

  it('appends the messages of many callers in call order, each getting its own entry ids', async () => {
    const appender = new StreamAppender(limits);
    const messages = Array.from({ length: 20 }, (_, i) => command('S', `CP${i}`));
    await redis.config('RESETSTAT');
    const ids = await Promise.all([
      appender.append(redis, 'inbox', messages.slice(0, 1)),
      appender.append(redis, 'inbox', messages.slice(1, 15)),
      appender.append(redis, 'inbox', messages.slice(15)),
    ]);

    // One TTL renewal for the three callers of the turn.
    expect(await redis.info('commandstats')).toMatch(/cmdstat_pexpire:calls=1,/);
    expect(ids.map((own) => own.length)).toEqual([1, 14, 5]);
    const entries = entriesOf(await redis.xread('STREAMS', 'inbox', '0'));
    expect(entries.map((entry) => entry.id)).toEqual(ids.flat());
    expect(entries.map((entry) => decodeEntryFields(entry.fields))).toEqual(messages);
    expect(await redis.pttl('inbox')).toBeGreaterThan(0);
  });

  it('fails only the callers whose own messages were refused', async () => {
    const appender = new StreamAppender(limits);
    await redis.set('not-a-stream', 'x');
    const refused = appender.append(redis, 'not-a-stream', [command('S', 'CP1')]);
    const accepted = appender.append(redis, 'inbox', [command('S', 'CP2')]);

    await expect(refused).rejects.toThrow(/WRONGTYPE/);
    await expect(accepted).resolves.toHaveLength(1);
  });
});
