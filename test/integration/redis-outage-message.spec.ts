import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ClusterUnavailableError } from '../../lib/protocol/errors.js';
import { RedisAdapter } from '../../lib/redis/redis-adapter.js';
import { command, FakeLocalRegistry, MemoryLogger } from '../support/redis-fixtures.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { laneOf } from '../support/addresses.js';

describe('a Redis outage, as a caller reads it', () => {
  let server: RedisServer;
  let adapter: RedisAdapter;

  beforeAll(async () => {
    server = await startRedisServer();
    adapter = new RedisAdapter({ url: server.url, nodeTtlMs: 1_500, logger: new MemoryLogger() });
    await adapter.connect('outage-node', new FakeLocalRegistry('outage-node'));
  });

  afterAll(async () => {
    adapter.abort();
    await stopAllRedisServers();
  });

  it('names Redis and its address in our words, not ioredis internals', async () => {
    await server.stop();
    const failure = await adapter.publish(laneOf('other-node', command('outage-node', 'CP-OUTAGE')), command('outage-node', 'CP-OUTAGE')).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(ClusterUnavailableError);
    const message = (failure as Error).message;
    expect(message).toMatch(new RegExp(`^cluster transport unavailable: Redis at 127\\.0\\.0\\.1:${server.port} unreachable: \\w`));
    expect(message).not.toMatch(/maxRetriesPerRequest|Connection is closed|Stream isn't writeable|ECONNREFUSED/);
  });
});
