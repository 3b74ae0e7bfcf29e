import type { ClusterMessage, CommandEnvelope, ReplyEnvelope } from '../../lib/cluster/envelope.js';
import { settleOutcome } from '../../lib/cluster/outcome.js';
import { InboxFullError } from '../../lib/protocol/errors.js';
import { RedisKeys } from '../../lib/redis/redis-keys.js';
import { command, commandCalls, connectCharger, gate, startNode, redisTestBed } from '../support/redis-fixtures.js';
import { waitFor } from '../support/wait.js';
import { inboxOf } from '../../lib/cluster/address.js';
import { laneOf } from '../support/addresses.js';

describe('takeover of a dead node', () => {
  const bed = redisTestBed();
  const node = bed.node;
  const keys = new RedisKeys();

  it('one survivor drains the inbox: forwards what moved, answers the rest, drops the dead-ends, cleans up', async () => {
    const a = await startNode(bed.server.url, 'A');
    const b = await node('B');
    const c = await node('C');
    const x = await connectCharger(a, 'X');
    await connectCharger(a, 'Y');
    a.inbox.gate = gate().promise; // A is busy with whatever it reads

    const inFlight = command('C', 'X');
    await c.adapter.publish(laneOf('A', inFlight), inFlight);
    await waitFor('A read the in-flight command', () => a.inbox.messages.length === 1);
    a.adapter.abort(); // kill -9: nothing acknowledged, liveness left to lapse

    // Y reconnects to B; callers that looked up X and Y before the crash still write to A's inbox.
    await connectCharger(b, 'Y');
    const forX = command('C', 'X');
    const forY = command('C', 'Y');
    const expired = command('C', 'X', { deadline: Date.now() + 100 });
    const replyForA: ReplyEnvelope = { kind: 'reply', id: 'r1', from: 'C', identity: 'Z', outcome: { status: 'result', payload: {} } };
    await c.adapter.publishBatch([forX, forY, expired, replyForA].map((message) => ({ to: laneOf('A', message), message })));

    const replies = await waitFor('C answered for both X commands', () => {
      const got = c.inbox.ofKind('reply');
      return got.length >= 2 ? got : null;
    });
    expect(replies.find((reply) => reply.id === forX.id)).toEqual({
      kind: 'reply',
      id: forX.id,
      from: expect.stringMatching(/^[BC]$/),
      identity: 'X',
      outcome: { status: 'notConnected', reason: 'node A died' },
    });
    expect(replies.find((reply) => reply.id === inFlight.id)?.outcome).toEqual({
      status: 'notConnected',
      reason: expect.stringContaining('node A died while handling the command'),
      maybeDelivered: true,
    });
    const expiredReply = await waitFor('C told the expired command never went out', () =>
      c.inbox.ofKind('reply').find((reply) => reply.id === expired.id),
    );
    expect(expiredReply.outcome).toEqual({ status: 'timeout', sent: false });
    const forwarded = await waitFor('B got the command for Y', () => b.inbox.ofKind('command').find((m) => m.id === forY.id));
    expect(forwarded).toEqual<CommandEnvelope>({ ...forY, hops: 1 });

    await waitFor('A is gone from the registry', async () => !(await bed.redis.zrange(keys.registry, '0', '-1')).includes('A'));
    // The lock goes last, once the registry entry is gone.
    await waitFor('A has no keys left', async () =>
      (await bed.redis.exists(keys.alive('A'), keys.stream('A'), keys.replies('A'), keys.owned('A'), keys.takeoverLock('A'))) === 0,
    );
    expect(await bed.redis.exists(keys.presence('X'))).toBe(0);
    expect((await b.adapter.getPresence('Y'))?.nodeId).toBe('B');
    expect(c.inbox.ofKind('reply')).toHaveLength(3); // X twice, and the expired one

    const [lb, lc] = [b.nodeLoss, c.nodeLoss];
    expect(lb.takeovers + lc.takeovers).toBe(1);
    expect(lb.forwarded + lc.forwarded).toBe(1);
    expect(lb.answered + lc.answered).toBe(3);
    // The reply for A went to A's replies stream, deleted unread with A's keys: nobody waits for it.
    expect(lb.dropped + lc.dropped).toBe(0);
    expect(x.nodeId).toBe('A');
  });

  it("answers a command whose new owner's inbox is full as refused (never sent) instead of forwarding it", async () => {
    const a = await startNode(bed.server.url, 'A', {}, { subscribe: false });
    const c = await node('C');
    const forY = command('C', 'Y');
    await c.adapter.publish(laneOf('A', forY), forY);
    a.adapter.abort();

    const b = await node('B', { streamMaxLen: 10 });
    b.inbox.holdCommands = true; // B's charge points never answer: its inbox stays at its cap
    await connectCharger(b, 'Y');
    await c.adapter.publishBatch(Array.from({ length: 10 }, () => ({ to: inboxOf('B'), message: command('C', 'Y') })));

    const reply = await waitFor('C told the command was refused', () => c.inbox.ofKind('reply').find((r) => r.id === forY.id));
    expect(reply.outcome).toMatchObject({ status: 'failed', errorCode: 'OCPP_INBOX_FULL', nodeId: 'B', limit: 10, queued: 10 });
    expect(() => settleOutcome(reply.outcome, { identity: 'Y', action: 'DataTransfer', timeoutMs: 1000 })).toThrow(InboxFullError);
    expect(b.inbox.ofKind('command').map((m) => m.id)).not.toContain(forY.id);
    const [mb, mc] = await Promise.all([b.adapter.metrics(), c.adapter.metrics()]);
    expect(mb.commandsRefused + mc.commandsRefused).toBe(1);
    expect(b.nodeLoss.forwarded + c.nodeLoss.forwarded).toBe(0);
  });

  it('acknowledges the entries nobody waits for together, not one round trip each', async () => {
    const a = await startNode(bed.server.url, 'A', {}, { subscribe: false });
    const b = await node('B');
    const before = await bed.redis.info('commandstats');
    a.adapter.abort();
    // Evictions other nodes sent while A's liveness had not lapsed yet (a reconnection storm).
    const evictions = Array.from({ length: 150 }, (_, i): ClusterMessage => ({ kind: 'evict', identity: `CP${i}`, epoch: 1, newOwner: 'B' }));
    await b.adapter.publishBatch(evictions.map((message) => ({ to: inboxOf('A'), message })));

    await waitFor('A is gone from the registry', async () => !(await bed.redis.zrange(keys.registry, '0', '-1')).includes('A'));
    const after = await bed.redis.info('commandstats');
    expect(b.nodeLoss.takeovers).toBe(1);
    expect(b.nodeLoss.dropped).toBe(150);
    // Read 100 at a time: one XACK per batch read.
    expect(commandCalls(after, 'xack') - commandCalls(before, 'xack')).toBe(2);
  });

  it('leaves live nodes alone; a command that raced a clean leave is still answered', async () => {
    const a = await startNode(bed.server.url, 'A');
    const b = await node('B');
    await new Promise((resolve) => setTimeout(resolve, 1000)); // several registry checks pass
    expect(b.nodeLoss.takeovers).toBe(0);
    await a.adapter.disconnect();
    expect(await bed.redis.zrange(keys.registry, '0', '-1')).toEqual(['B']);

    // A late command for a node that has left (stream recreated by the write) is not lost:
    // re-register A as a member whose key has lapsed, as after a leave that raced a write.
    await bed.redis.zadd(keys.registry, Date.now(), 'A');
    const late = command('B', 'X');
    await b.adapter.publish(laneOf('A', late), late);
    const reply = await waitFor('B answered itself', () => b.inbox.ofKind('reply').find((r) => r.id === late.id));
    expect(reply.outcome).toEqual({ status: 'notConnected', reason: 'node A died' });
    await waitFor('A cleaned up', async () => (await bed.redis.exists(keys.stream('A'))) === 0);
  });
});
