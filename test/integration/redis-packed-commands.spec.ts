import type { ClusterMessage, CommandEnvelope, ReplyEnvelope } from '../../lib/cluster/envelope.js';
import { PACKED_COMMANDS_VERSION } from '../../lib/cluster/envelope.js';
import { inboxOf, repliesOf } from '../../lib/cluster/address.js';
import { InboxFullError } from '../../lib/protocol/errors.js';
import { INBOX_ACK, PACK_MAX_COUNT } from '../../lib/redis/lua-scripts.js';
import { RedisKeys } from '../../lib/redis/redis-keys.js';
import { StreamAppender } from '../../lib/redis/stream-appender.js';
import { StreamConsumer } from '../../lib/redis/stream-consumer.js';
import { decodeEntryMessages, entriesOf, pairsOf } from '../../lib/redis/stream-publisher.js';
import { command, connectCharger, gate, MemoryLogger, redisTestBed, startNode } from '../support/redis-fixtures.js';
import { waitFor } from '../support/wait.js';
import type { Redis } from 'ioredis';

/**
 * Inbox entries that pack the commands of one turn (PACKED_COMMANDS_VERSION): order, ids, the cap
 * still in commands, acknowledgement only once every packed command settled, maxInFlight in
 * commands, packing only for owners that said they read it, and takeover command by command.
 */
describe('packed command entries (Redis)', () => {
  const bed = redisTestBed();
  const keys = new RedisKeys();
  const inbox = keys.stream('A');
  const packed = keys.inboxPacked('A');

  const packingAppender = (fallbackCap: number) => new StreamAppender(keys, { fallbackCap, ttlMs: 60_000 }, (nodeId) => nodeId === 'A');
  const commands = (count: number, origin = 'S') => Array.from({ length: count }, (_, i) => command(origin, `CP${i}`));
  const entries = async (streamKey: string) => entriesOf(await bed.redis.xread('STREAMS', streamKey, '0'));
  const packedCount = async () => Number((await bed.redis.get(packed)) ?? 0);

  it('packs a turn of many callers into entries of at most PACK_MAX_COUNT, in call order, each message knowing its entry', async () => {
    const appender = packingAppender(1000);
    const messages = commands(PACK_MAX_COUNT + 8);
    const ids = await Promise.all([
      appender.append(bed.redis, 'A', inbox, messages.slice(0, 1)),
      appender.append(bed.redis, 'A', inbox, messages.slice(1, 20)),
      appender.append(bed.redis, 'A', inbox, messages.slice(20)),
    ]);

    const stored = await entries(inbox);
    expect(stored).toHaveLength(2);
    expect(stored.map((entry) => decodeEntryMessages(entry.fields))).toEqual([messages.slice(0, PACK_MAX_COUNT), messages.slice(PACK_MAX_COUNT)]);
    expect(ids.flat()).toEqual(messages.map((_, i) => stored[i < PACK_MAX_COUNT ? 0 : 1].id));
    expect(await packedCount()).toBe(PACK_MAX_COUNT - 1 + 7);
    expect(await bed.redis.pttl(packed)).toBeGreaterThan(50_000);
  });

  it('never packs for an owner not known to read it: one entry per command, no packed count', async () => {
    const appender = new StreamAppender(keys, { fallbackCap: 1000, ttlMs: 60_000 }, () => false);
    await appender.append(bed.redis, 'A', inbox, commands(5));
    expect((await entries(inbox)).map((entry) => decodeEntryMessages(entry.fields)?.length)).toEqual([1, 1, 1, 1, 1]);
    expect(await bed.redis.exists(packed)).toBe(0);
  });

  it('keeps the cap in commands: an inbox of two entries holding 13 commands refuses at a cap of 10', async () => {
    const appender = packingAppender(10);
    await bed.redis.xgroup('CREATE', inbox, 'inbox', '0', 'MKSTREAM');
    await appender.append(bed.redis, 'A', inbox, commands(8));
    // 8 queued < 10: admitted whole (the cap may be passed by one request).
    await appender.append(bed.redis, 'A', inbox, commands(5));
    expect(await entries(inbox)).toHaveLength(2);

    const refused = appender.append(bed.redis, 'A', inbox, commands(1));
    await expect(refused).rejects.toBeInstanceOf(InboxFullError);
    await expect(refused).rejects.toMatchObject({ queued: 13, limit: 10 });
    expect(await entries(inbox)).toHaveLength(2);
  });

  it('forgets a packed count once nothing is left unhandled, and never trusts more than the entries can hold', async () => {
    const appender = packingAppender(10);
    await bed.redis.xgroup('CREATE', inbox, 'inbox', '0', 'MKSTREAM');
    // A count left behind (an older reader acknowledged without taking it off): the inbox is empty.
    await bed.redis.set(packed, 500);
    await expect(appender.append(bed.redis, 'A', inbox, commands(1))).resolves.toHaveLength(1);
    expect(await packedCount()).toBe(0);

    // One unread plain entry can hold at most PACK_MAX_COUNT commands, whatever the count says.
    await bed.redis.set(packed, 500);
    const capped = packingAppender(PACK_MAX_COUNT + 1);
    await expect(capped.append(bed.redis, 'A', inbox, commands(1))).resolves.toHaveLength(1);
    await expect(capped.append(bed.redis, 'A', inbox, commands(1))).rejects.toMatchObject({ queued: 2 * PACK_MAX_COUNT });
  });

  it('INBOX_ACK takes an entry\'s share off the packed count once, however often it is acknowledged', async () => {
    const appender = packingAppender(1000);
    await bed.redis.xgroup('CREATE', inbox, 'inbox', '0', 'MKSTREAM');
    await appender.append(bed.redis, 'A', inbox, commands(6));
    await appender.append(bed.redis, 'A', inbox, commands(4));
    const [first, second] = await entries(inbox);
    await bed.redis.xreadgroup('GROUP', 'inbox', 'A', 'STREAMS', inbox, '>');
    expect(await packedCount()).toBe(5 + 3);

    expect(await INBOX_ACK.run(bed.redis, [inbox, packed], ['inbox', first.id, 5])).toBe(1);
    expect(await INBOX_ACK.run(bed.redis, [inbox, packed], ['inbox', first.id, 5])).toBe(0);
    expect(await packedCount()).toBe(3);
    expect(await INBOX_ACK.run(bed.redis, [inbox, packed], ['inbox', first.id, 5, second.id, 3])).toBe(1);
    expect(await packedCount()).toBe(0);
    // It stays (0, with its TTL): a script naming a missing key beside existing ones gets TRYAGAIN while its slot migrates.
    expect(await bed.redis.pttl(packed)).toBeGreaterThan(50_000);
  });

  describe('the owner\'s reader', () => {
    const consumers: StreamConsumer[] = [];
    const blocking: Redis[] = [];
    afterEach(async () => {
      await Promise.all(consumers.splice(0).map((consumer) => consumer.stop(100)));
      for (const client of blocking.splice(0)) client.disconnect();
    });

    function reader(handler: (message: ClusterMessage) => void | Promise<void>, maxInFlight = 1000): StreamConsumer {
      const blockingClient = bed.redis.duplicate();
      blocking.push(blockingClient);
      const consumer = new StreamConsumer({
        streamKey: inbox,
        packedKey: packed,
        group: 'inbox',
        consumer: 'A',
        reader: () => blockingClient,
        writer: () => bed.redis,
        handler,
        logger: new MemoryLogger(),
        blockMs: 100,
        maxInFlight,
      });
      consumers.push(consumer);
      return consumer;
    }

    it('hands each packed command over in order, and acknowledges the entry (and its packed share) only once the last settles', async () => {
      const appender = packingAppender(1000);
      const messages = commands(8);
      await appender.append(bed.redis, 'A', inbox, messages);
      const handled: string[] = [];
      const last = gate();
      const consumer = reader((message) => {
        handled.push((message as CommandEnvelope).id);
        return (message as CommandEnvelope).id === messages[7].id ? last.promise : undefined;
      });
      await consumer.start();

      await waitFor('all eight handed over', () => handled.length === 8);
      expect(handled).toEqual(messages.map((message) => message.id));
      // Seven settled, one held: the entry stays pending, its packed share counted.
      expect(((await bed.redis.xpending(inbox, 'inbox')) as unknown[])[0]).toBe(1);
      expect(await packedCount()).toBe(7);
      // Pending counts commands: all eight were handed over and their entry is not acknowledged.
      expect((await consumer.metrics()).pending).toBe(8);

      last.open();
      await waitFor('the entry is acknowledged', async () => ((await bed.redis.xpending(inbox, 'inbox')) as unknown[])[0] === 0);
      expect(await packedCount()).toBe(0);
      expect(consumer.acked).toBe(1);
      expect((await consumer.metrics()).pending).toBe(0);
    });

    it('counts maxInFlight in commands: the commands of a read entry beyond it wait, in order, and nothing more is read', async () => {
      const appender = packingAppender(1000);
      // Two turns, two packed entries of 8 (counted as entries, 2 of 8 would leave room for more).
      const first = commands(8);
      const second = commands(8);
      await appender.append(bed.redis, 'A', inbox, first);
      await appender.append(bed.redis, 'A', inbox, second);
      const handed: string[] = [];
      const release = new Map<string, () => void>();
      const consumer = reader((message) => {
        const { id } = message as CommandEnvelope;
        handed.push(id);
        return new Promise<void>((resolve) => release.set(id, resolve));
      }, 8);
      await consumer.start();
      await waitFor('eight handed over', () => handed.length === 8);

      const late = command('S', 'LATE');
      await appender.append(bed.redis, 'A', inbox, [late]);
      // Several reads' worth of time (BLOCK 100 ms): at its limit the reader hands nothing more over and reads nothing.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(handed).toEqual(first.map((message) => message.id));
      expect(consumer.waitingCount).toBe(8);
      expect(pairsOf(((await bed.redis.xinfo('GROUPS', inbox)) as unknown[])[0]).lag).toBe(1);
      // Commands not being handled: the unread one and the eight waiting; pending: the eight
      // handed over (two entries read and not acknowledged, counted in commands).
      expect((await consumer.metrics()).lag).toBe(9);
      expect((await consumer.metrics()).pending).toBe(8);

      // Each settled handler makes room for the next waiting command, in stream order.
      for (const id of handed.slice(0, 3)) release.get(id)!();
      await waitFor('three more handed over', () => handed.length === 11);
      expect(handed.slice(8)).toEqual(second.slice(0, 3).map((message) => message.id));

      // Settle whatever runs, until all seventeen were handed over.
      await waitFor('all seventeen handed over', () => {
        for (const [id, resolve] of release) {
          resolve();
          release.delete(id);
        }
        return handed.length === 17;
      });
      expect(handed).toEqual([...first, ...second, late].map((message) => message.id));
      for (const resolve of release.values()) resolve();
      await waitFor('everything acknowledged', async () => ((await bed.redis.xpending(inbox, 'inbox')) as unknown[])[0] === 0);
      expect(await packedCount()).toBe(0);
      expect(consumer.waitingCount).toBe(0);
    });
  });

  describe('between nodes', () => {
    const replyFrom = (from: string, v: number | undefined): ReplyEnvelope => ({
      kind: 'reply',
      id: 'r',
      from,
      identity: 'CP',
      outcome: { status: 'result', payload: {} },
      ...(v === undefined ? {} : { v }),
    });

    it('a caller packs only for owners whose replies said they read packed commands', async () => {
      const caller = await bed.node('C');
      const newOwner = await startNode(bed.server.url, 'N', {}, { subscribe: false });
      const oldOwner = await startNode(bed.server.url, 'O', {}, { subscribe: false });
      bed.nodes.push(newOwner, oldOwner);
      const batch = (owner: string) => commands(5, 'C').map((message) => ({ to: inboxOf(owner), message }));
      const entryCounts = async (owner: string) => (await entries(keys.stream(owner))).map((entry) => decodeEntryMessages(entry.fields)!.length);

      // Nothing heard from either yet: one entry per command.
      await caller.adapter.publishBatch([...batch('N'), ...batch('O')]);
      expect(await entryCounts('N')).toEqual([1, 1, 1, 1, 1]);
      expect(await entryCounts('O')).toEqual([1, 1, 1, 1, 1]);

      // N answers in version 4 (it reads packed entries), O in 3.
      await newOwner.adapter.publish(repliesOf('C'), replyFrom('N', PACKED_COMMANDS_VERSION));
      await oldOwner.adapter.publish(repliesOf('C'), replyFrom('O', PACKED_COMMANDS_VERSION - 1));
      await waitFor('C read both replies', () => caller.inbox.ofKind('reply').length === 2);

      await caller.adapter.publishBatch([...batch('N'), ...batch('O')]);
      expect(await entryCounts('N')).toEqual([1, 1, 1, 1, 1, 5]);
      expect(await entryCounts('O')).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    });

    it('a node restarted under its id re-reads the packed entry it had read as redelivered, command by command, and acknowledges it once', async () => {
      const quiet = { takeoverIntervalMs: 60_000 };
      const a = await startNode(bed.server.url, 'A', quiet);
      const c = await bed.node('C', quiet);
      a.inbox.gate = new Promise<void>(() => undefined); // A crashes while handling them
      await a.adapter.publish(repliesOf('C'), replyFrom('A', PACKED_COMMANDS_VERSION));
      await waitFor('C learned that A reads packed commands', () => c.inbox.ofKind('reply').length === 1);
      const sent = [command('C', 'X'), command('C', 'Y'), command('C', 'X')];
      await c.adapter.publishBatch(sent.map((message) => ({ to: inboxOf('A'), message })));
      await waitFor('A read all three', () => a.inbox.ofKind('command').length === 3);
      expect(await entries(keys.stream('A'))).toHaveLength(1);
      a.adapter.abort();
      await a.nodeLoss.stop();
      await waitFor('A is lost', async () => (await c.adapter.lostNodes()).includes('A'));

      const again = await startNode(bed.server.url, 'A', quiet, { subscribe: false });
      bed.nodes.push(again);
      const seen: Array<[string, boolean]> = [];
      await again.adapter.subscribe('node', (message, delivery) => {
        if (message.kind === 'command') seen.push([message.id, delivery?.redelivered === true]);
      });
      await waitFor('the three handed over again', () => seen.length === 3);
      expect(seen).toEqual(sent.map((message) => [message.id, true]));
      await waitFor('the entry is acknowledged', async () => ((await bed.redis.xpending(keys.stream('A'), 'inbox')) as unknown[])[0] === 0);
      expect(await packedCount()).toBe(0);
    });

    it('a takeover that settled part of a packed entry hands out only the rest on its next pass, and acknowledges the entry once all are settled', async () => {
      // Nobody takes A over on their own (a check a minute): the test drives one claim by hand.
      const quiet = { takeoverIntervalMs: 60_000 };
      const a = await startNode(bed.server.url, 'A', {}, { subscribe: false });
      bed.nodes.push(a);
      const c = await bed.node('C', quiet);
      const b = await bed.node('B', quiet);
      await a.adapter.publish(repliesOf('C'), replyFrom('A', PACKED_COMMANDS_VERSION));
      await waitFor('C learned that A reads packed commands', () => c.inbox.ofKind('reply').length === 1);
      const sent = [command('C', 'X'), command('C', 'X'), command('C', 'X')];
      await c.adapter.publishBatch(sent.map((message) => ({ to: inboxOf('A'), message })));
      expect(await entries(keys.stream('A'))).toHaveLength(1);
      a.adapter.abort();
      await waitFor('A is lost', async () => (await b.adapter.lostNodes()).includes('A'));

      const claim = (await b.adapter.claimLostNode('A'))!;
      expect(claim).not.toBeNull();
      const first = (await claim.next())!;
      expect(first.map((entry) => [(entry.message as CommandEnvelope | null)?.id, entry.delivered])).toEqual(sent.map((message) => [message.id, false]));
      await claim.settle(first[0]);
      // One of three settled: the entry stays pending, so finishing finds more to do.
      expect(((await bed.redis.xpending(keys.stream('A'), 'inbox')) as unknown[])[0]).toBe(1);
      expect((await claim.finish()).status).toBe('more');

      const rest = (await claim.next())!;
      expect(rest.map((entry) => [(entry.message as CommandEnvelope | null)?.id, entry.delivered])).toEqual(sent.slice(1).map((message) => [message.id, false]));
      await claim.settleMany!(rest);
      expect(((await bed.redis.xpending(keys.stream('A'), 'inbox')) as unknown[])[0]).toBe(0);
      expect(await packedCount()).toBe(0);
      expect(await claim.next()).toEqual([]);
      expect((await claim.finish()).status).toBe('done');
      await claim.release();
    });

    it('a takeover settles a packed entry command by command: what the dead node never read follows its charger, what it read is answered maybe delivered', async () => {
      const a = await startNode(bed.server.url, 'A');
      bed.nodes.push(a);
      const c = await bed.node('C');
      await connectCharger(a, 'X');
      await connectCharger(a, 'Y');
      const held = gate();
      a.inbox.gate = held.promise; // A is busy with whatever it reads
      await a.adapter.publish(repliesOf('C'), replyFrom('A', PACKED_COMMANDS_VERSION));
      await waitFor('C learned that A reads packed commands', () => c.inbox.ofKind('reply').length === 1);

      const read = [command('C', 'X'), command('C', 'X'), command('C', 'X')];
      await c.adapter.publishBatch(read.map((message) => ({ to: inboxOf('A'), message })));
      await waitFor('A read the first packed entry', () => a.inbox.ofKind('command').length === 3);
      a.adapter.abort(); // kill -9: nothing acknowledged

      const b = await bed.node('B');
      await connectCharger(b, 'Y'); // Y moved; X did not come back
      const unread = [command('C', 'Y'), command('C', 'X'), command('C', 'Y'), command('C', 'X')];
      await c.adapter.publishBatch(unread.map((message) => ({ to: inboxOf('A'), message })));
      expect((await entries(keys.stream('A'))).map((entry) => decodeEntryMessages(entry.fields)!.length)).toEqual([3, 4]);

      const answers = await waitFor('C heard about the five commands still for X', () => {
        const got = c.inbox.ofKind('reply').filter((reply) => reply.from !== 'A');
        return got.length === 5 ? got : null;
      });
      const outcomeOf = (id: string) => answers.find((reply) => reply.id === id)?.outcome;
      for (const message of read) {
        expect(outcomeOf(message.id)).toMatchObject({ status: 'notConnected', maybeDelivered: true });
      }
      for (const message of unread.filter((m) => m.identity === 'X')) expect(outcomeOf(message.id)).toEqual({ status: 'notConnected', reason: 'node A died' });
      const forwarded = await waitFor('B got both commands for Y, in order', () => {
        const got = b.inbox.ofKind('command');
        return got.length === 2 ? got : null;
      });
      expect(forwarded.map((message) => message.id)).toEqual(unread.filter((m) => m.identity === 'Y').map((m) => m.id));
      expect(b.nodeLoss.forwarded + c.nodeLoss.forwarded).toBe(2);
      expect(b.nodeLoss.answered + c.nodeLoss.answered).toBe(5);
      await waitFor('A has no keys left', async () => (await bed.redis.exists(keys.stream('A'), keys.inboxPacked('A'))) === 0);
      held.open();
    });
  });
});
