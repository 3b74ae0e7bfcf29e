import { ClusterUnavailableError, NodeIdConflictError } from '../../lib/protocol/errors.js';
import { RedisAdapter } from '../../lib/redis/redis-adapter.js';
import { RedisKeys } from '../../lib/redis/redis-keys.js';
import { command, connectCharger, FakeLocalRegistry, gate, MemoryLogger, startNode, redisTestBed, ownerOf } from '../support/redis-fixtures.js';
import { sleep, waitFor } from '../support/wait.js';
import { laneOf } from '../support/addresses.js';

describe('RedisAdapter node liveness', () => {
  const bed = redisTestBed();
  const nodes = bed.nodes;
  const node = bed.node;
  const keys = new RedisKeys();

  it('refuses a second live process with the same node id', async () => {
    const first = await node('A');
    const second = new RedisAdapter({ url: bed.server.url, nodeTtlMs: 1500, logger: new MemoryLogger() });
    try {
      await expect(second.connect('A', new FakeLocalRegistry('A'))).rejects.toBeInstanceOf(NodeIdConflictError);
    } finally {
      await second.disconnect();
    }
    expect(first.adapter.isHealthy()).toBe(true);
    expect(await bed.redis.get(keys.alive('A'))).not.toBeNull();
  });

  it('a restart after a crash waits for the dead key, then resumes the pending entries still in time', async () => {
    const sender = await node('S', { takeoverIntervalMs: 60_000 });
    const crashed = await startNode(bed.server.url, 'A', { takeoverIntervalMs: 60_000 });
    const hold = gate();
    crashed.inbox.gate = hold.promise; // handlers never finish: entries stay pending
    const inTime = command('S', 'CP1');
    const expiring = command('S', 'CP1', { deadline: Date.now() + 800 });
    await sender.adapter.publish(laneOf('A', inTime), inTime);
    await sender.adapter.publish(laneOf('A', expiring), expiring);
    await waitFor('A read both', () => crashed.inbox.messages.length === 2);
    crashed.adapter.abort();
    const neverRead = command('S', 'CP2');
    await sender.adapter.publish(laneOf('A', neverRead), neverRead);

    expect(await bed.redis.pttl(keys.alive('A'))).toBeGreaterThan(0); // the dead process's key is still there
    const restarted = await node('A', { takeoverIntervalMs: 60_000 });
    await waitFor('resumed entries', () => restarted.inbox.messages.length >= 3);
    await sleep(200);
    // The expired one too: the router answers it "timed out, never sent" instead of running it.
    expect(restarted.inbox.messages.map((message) => (message as { id: string }).id)).toEqual([inTime.id, expiring.id, neverRead.id]);
    await waitFor('all acknowledged', async () => (await restarted.adapter.metrics()).pendingMessages === 0);
  });

  it('a clean stop removes the liveness key, its presence and its keys, and tells the others', async () => {
    const a = await node('A');
    const b = await node('B');
    await connectCharger(a, 'CP1');
    nodes.splice(nodes.indexOf(a), 1);
    await a.adapter.disconnect();
    expect(await bed.redis.exists(keys.alive('A'), keys.stream('A'), keys.owned('A'), keys.presence('CP1'))).toBe(0);
    expect(await bed.redis.zrange(keys.registry, '0', '-1')).toEqual(['B']);
    await waitFor('nodeLeft', () => b.broadcasts.ofKind('nodeLeft').some((message) => message.nodeId === 'A'));
    expect(await b.adapter.isNodeAlive('A')).toBe(false);
  });

  it('takes its liveness key and inbox back when Redis lost them without a disconnect (FLUSHALL)', async () => {
    const a = await node('A');
    const b = await node('B');
    await connectCharger(a, 'CP1');
    await bed.redis.flushall();
    await waitFor('liveness back', async () => (await bed.redis.exists(keys.alive('A'))) === 1);
    await waitFor('presence back', async () => (await ownerOf(b.adapter, 'CP1')) === 'A');
    await b.adapter.publish(laneOf('A', command('B', 'CP1')), command('B', 'CP1'));
    await waitFor('A reads its inbox again', () => a.inbox.ofKind('command').length === 1);
    await sleep(300);
    expect(a.inbox.ofKind('command')).toHaveLength(1);
  });

  it('stops acting as the node when another process took its id meanwhile', async () => {
    const a = await node('A');
    await bed.redis.set(keys.alive('A'), 'someone-else', 'PX', 60_000);
    await waitFor('A notices', () => !a.adapter.isHealthy());
    expect(a.logger.lines.some((line) => line.startsWith('error') && line.includes('held by another process'))).toBe(true);
    await expect(a.adapter.setPresence('CP1', 'ocpp1.6', Date.now())).rejects.toBeInstanceOf(ClusterUnavailableError);
    expect(await bed.redis.get(keys.alive('A'))).toBe('someone-else');
  });
});
