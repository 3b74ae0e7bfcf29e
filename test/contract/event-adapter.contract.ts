import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { type ClusterMessage, type CommandEnvelope } from '../../lib/cluster/envelope.js';
import type { EventAdapterInterface, PresenceSnapshotSource } from '../../lib/cluster/event-adapter.interface.js';
import { ClusterUnavailableError } from '../../lib/protocol/errors.js';
import { waitFor } from '../support/wait.js';
import { ALL_NODES, inboxOf, repliesOf } from '../../lib/cluster/address.js';
import { laneOf } from '../support/addresses.js';

/**
 * The promises every cluster transport keeps, run against each one by a runner file
 * (`<transport>.contract.spec.ts`). A new transport plugs in with a {@link TransportUnderTest}.
 */
export interface TransportUnderTest {
  /** Starts what the transport needs (servers...), once per runner. */
  setUp(): Promise<void>;
  tearDown(): Promise<void>;
  /** A new adapter, not connected yet, sharing the cluster of every other adapter made since setUp. */
  adapter(): EventAdapterInterface;
  /** Makes `adapter` vanish as a crashed process would (no clean-up, no goodbye). */
  crash(adapter: EventAdapterInterface): Promise<void>;
  /** How long the transport may take to judge a crashed node dead. */
  deathWithinMs: number;
  /** It has a parked-command store (`deliverWithinMs`); without one the option is refused. */
  parksCommands: boolean;
}

const NO_PRESENCE: PresenceSnapshotSource = { localPresence: () => [] };

function command(origin: string, target: string, index: number): CommandEnvelope {
  return { kind: 'command', id: `${origin}-${index}`, origin, identity: `${target}-CP`, action: 'Reset', payload: { index }, deadline: Date.now() + 60_000 };
}

export function eventAdapterContract(name: string, transport: TransportUnderTest): void {
  describe(`${name} keeps the transport contract`, () => {
    const started: EventAdapterInterface[] = [];
    let run = 0;

    beforeAll(() => transport.setUp(), 60_000);
    afterAll(() => transport.tearDown(), 60_000);
    afterEach(async () => {
      await Promise.all(started.splice(0).map((adapter) => adapter.disconnect().catch(() => undefined)));
    });

    /** A connected node with its inbox and broadcast subscriptions, recording what it receives. */
    async function node(label: string, handle: (message: ClusterMessage) => void | Promise<void> = () => undefined) {
      const nodeId = `${label}-${++run}-${process.pid}`;
      const adapter = transport.adapter();
      const received: ClusterMessage[] = [];
      await adapter.connect(nodeId, NO_PRESENCE);
      started.push(adapter);
      const handler = (message: ClusterMessage) => {
        received.push(message);
        return handle(message);
      };
      await adapter.subscribe('node', handler);
      await adapter.subscribe('allNodes', handler);
      return { nodeId, adapter, received };
    }

    it('has a name for health output', () => {
      expect(typeof transport.adapter().name).toBe('string');
      expect(transport.adapter().name.length).toBeGreaterThan(0);
    });

    it('delivers what one node publishes to another node in publish order', async () => {
      const sender = await node('sender');
      const receiver = await node('receiver');
      const sent = Array.from({ length: 50 }, (_, index) => command(sender.nodeId, receiver.nodeId, index));
      for (const message of sent.slice(0, 25)) await sender.adapter.publish(laneOf(receiver.nodeId, message), message);
      await sender.adapter.publishBatch(sent.slice(25).map((message) => ({ to: laneOf(receiver.nodeId, message), message })));
      await waitFor('all 50 commands', () => receiver.received.length >= 50);
      expect(receiver.received.map((message) => (message as CommandEnvelope).id)).toEqual(sent.map((message) => message.id));
      expect(sender.received.filter((message) => message.kind === 'command')).toEqual([]);
    });

    it('delivers one publishBatch with interleaved destinations to each node in batch order', async () => {
      const sender = await node('sender');
      const receivers = [await node('receiver-1'), await node('receiver-2'), await node('receiver-3')];
      // 900 messages, the destination changing at every one: each node's share keeps its order.
      const sent = Array.from({ length: 900 }, (_, index) => ({ to: receivers[index % 3], message: command(sender.nodeId, receivers[index % 3].nodeId, index) }));
      await sender.adapter.publishBatch(sent.map(({ to, message }) => ({ to: laneOf(to.nodeId, message), message })));
      await waitFor('300 commands on every receiver', () => receivers.every((receiver) => receiver.received.length >= 300));
      for (const receiver of receivers) {
        const expected = sent.filter(({ to }) => to === receiver).map(({ message }) => message.id);
        expect(receiver.received.map((message) => (message as CommandEnvelope).id)).toEqual(expected);
      }
    });

    it('counts a message as pending until its handler settles', async () => {
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const receiver = await node('acking', (message) => (message.kind === 'command' ? held : undefined));
      const sender = await node('sender');
      await sender.adapter.publish(laneOf(receiver.nodeId, command(sender.nodeId, receiver.nodeId, 1)), command(sender.nodeId, receiver.nodeId, 1));
      await waitFor('the command to arrive', () => receiver.received.length === 1);
      await waitFor('one pending message while the handler runs', async () => (await receiver.adapter.metrics()).pendingMessages === 1);
      release();
      await waitFor('no pending message once it settled', async () => (await receiver.adapter.metrics()).pendingMessages === 0);
    });

    it('lets the newest claim of an identity win, with a higher epoch, and names the one it replaced', async () => {
      const first = await node('first');
      const second = await node('second');
      const identity = `CP-NEWEST-${run}`;
      const older = await first.adapter.setPresence(identity, 'ocpp1.6', 1_000);
      expect(older.record).toMatchObject({ identity, nodeId: first.nodeId, protocol: 'ocpp1.6', connectedAt: 1_000 });
      await waitFor('the first claim to be visible', async () => (await second.adapter.getPresence(identity))?.nodeId === first.nodeId);
      const newer = await second.adapter.setPresence(identity, 'ocpp2.0.1', 2_000);
      expect(newer.record.epoch).toBeGreaterThan(older.record.epoch);
      expect(newer.previous).toMatchObject({ nodeId: first.nodeId, epoch: older.record.epoch });
      await waitFor('every node to see the newest claim', async () => (await first.adapter.getPresence(identity))?.nodeId === second.nodeId);
      expect(await first.adapter.getPresence(identity)).toMatchObject({ nodeId: second.nodeId, epoch: newer.record.epoch, protocol: 'ocpp2.0.1' });
      const batch = await first.adapter.getPresenceBatch([identity, `CP-NOBODY-${run}`]);
      expect([...batch.keys()]).toEqual([identity]);
      expect((await first.adapter.listPresence()).filter((record) => record.identity === identity)).toHaveLength(1);
    });

    it('removes presence only for the epoch that is current, and only from its owner', async () => {
      const first = await node('first');
      const second = await node('second');
      const identity = `CP-REMOVE-${run}`;
      const older = await first.adapter.setPresence(identity, 'ocpp1.6', 1_000);
      await waitFor('the first claim to be visible', async () => (await second.adapter.getPresence(identity)) !== null);
      const newer = await second.adapter.setPresence(identity, 'ocpp1.6', 2_000);
      await waitFor('the newer claim to be visible', async () => (await first.adapter.getPresence(identity))?.nodeId === second.nodeId);

      expect(await first.adapter.removePresence(identity, older.record.epoch)).toBe(false);
      expect(await first.adapter.removePresence(identity, newer.record.epoch)).toBe(false);
      expect(await second.adapter.removePresence(identity, older.record.epoch)).toBe(false);
      expect(await second.adapter.getPresence(identity)).toMatchObject({ nodeId: second.nodeId, epoch: newer.record.epoch });
      expect(await second.adapter.removePresence(identity, newer.record.epoch)).toBe(true);
      await waitFor('the removal to be visible', async () => (await first.adapter.getPresence(identity)) === null);
    });

    it('tells live nodes from dead ones, and reads a dead node\'s charge points as absent (once it is proven gone)', async () => {
      const observer = await node('observer');
      const doomed = await node('doomed');
      const leaving = await node('leaving');
      const identity = `CP-DEAD-${run}`;
      await doomed.adapter.setPresence(identity, 'ocpp1.6', 1_000);
      await waitFor('the claim to be visible', async () => (await observer.adapter.getPresence(identity)) !== null);
      expect(await observer.adapter.isNodeAlive(doomed.nodeId)).toBe(true);
      expect(await observer.adapter.isNodeAlive(`never-started-${run}`)).toBe(false);

      await leaving.adapter.disconnect();
      await waitFor('a node that left to read as dead', async () => !(await observer.adapter.isNodeAlive(leaving.nodeId)));

      await transport.crash(doomed.adapter);
      await waitFor('a crashed node to read as dead', async () => !(await observer.adapter.isNodeAlive(doomed.nodeId)), { timeoutMs: transport.deathWithinMs });
      if (typeof observer.adapter.claimLostNode === 'function') {
        // Silent is not gone: a frozen node comes back unless a survivor fences it first (README "Failure semantics").
        await expect(observer.adapter.getPresence(identity)).rejects.toBeInstanceOf(ClusterUnavailableError);
        expect((await observer.adapter.getPresenceBatch([identity])).get(identity)?.nodeId).toBe(doomed.nodeId);
        const claim = await waitFor('the crashed node to be claimed', () => observer.adapter.claimLostNode!(doomed.nodeId), { timeoutMs: transport.deathWithinMs });
        // Fenced, its presence not yet cleared by finish(): proven gone already.
        expect(await observer.adapter.getPresence(identity)).toBeNull();
        expect((await observer.adapter.getPresenceBatch([identity])).size).toBe(0);
        await claim.release();
      }
      expect(await observer.adapter.getPresence(identity)).toBeNull();
      expect((await observer.adapter.getPresenceBatch([identity])).size).toBe(0);
      expect((await observer.adapter.listPresence()).filter((record) => record.identity === identity)).toEqual([]);
    });

    it('lists the live nodes, itself included, and drops those that left or crashed', async () => {
      const observer = await node('live-observer');
      const leaving = await node('live-leaving');
      const doomed = await node('live-doomed');
      const everyone = [observer.nodeId, leaving.nodeId, doomed.nodeId];
      await waitFor('every node to be listed', async () => {
        const live = await observer.adapter.liveNodes();
        return everyone.every((nodeId) => live.includes(nodeId));
      });
      expect(new Set(await observer.adapter.liveNodes()).size).toBe((await observer.adapter.liveNodes()).length);
      await leaving.adapter.disconnect();
      await transport.crash(doomed.adapter);
      const live = await waitFor(
        'the nodes that left or crashed to drop out',
        async () => {
          const nodes = await observer.adapter.liveNodes();
          return nodes.includes(leaving.nodeId) || nodes.includes(doomed.nodeId) ? null : nodes;
        },
        { timeoutMs: transport.deathWithinMs },
      );
      expect(live).toContain(observer.nodeId);
    });

    it('delivers each lane of a node to that node only, and a reply never waits behind commands', async () => {
      const sender = await node('lane-sender');
      const receiver = await node('lane-receiver');
      const reply: ClusterMessage = { kind: 'reply', id: `lane-${run}`, from: sender.nodeId, identity: 'CP', outcome: { status: 'result', payload: {} } };
      await sender.adapter.publish(repliesOf(receiver.nodeId), reply);
      await sender.adapter.publish(inboxOf(receiver.nodeId), command(sender.nodeId, receiver.nodeId, 1));
      await waitFor('both lanes to arrive', () => receiver.received.length === 2);
      expect(receiver.received.map((message) => message.kind).sort()).toEqual(['command', 'reply']);
      expect(sender.received).toEqual([]);
    });

    it('reaches every node, the publisher included, with a broadcast', async () => {
      const nodes = [await node('b1'), await node('b2'), await node('b3')];
      const message: ClusterMessage = { kind: 'broadcast', id: `bc-${run}`, origin: nodes[0]!.nodeId, action: 'ClearCache', payload: {}, deadline: Date.now() + 60_000 };
      await nodes[0]!.adapter.publish(ALL_NODES, message);
      for (const each of nodes) {
        await waitFor(`${each.nodeId} to get the broadcast`, () => each.received.some((received) => received.kind === 'broadcast' && received.id === message.id));
      }
    });

    if (transport.parksCommands) {
      it('parks commands for every node: in order, taken only within their window, taken or withdrawn exactly once', async () => {
        const [first, second] = [await node('park1'), await node('park2')];
        const stores = [first.adapter.parkedCommands!, second.adapter.parkedCommands!];
        const identity = `PARK-${run}-${process.pid}`;
        const entry = (index: number, deliverBy: number) => ({
          command: { ...command(first.nodeId, 'x', index), identity, id: `park-${run}-${index}` },
          deliverBy,
          timeoutMs: 5_000,
        });
        const open = Date.now() + 60_000;
        const entries = [entry(1, open), entry(2, Date.now() - 1), entry(3, open), entry(4, open)];
        for (const [index, each] of entries.entries()) await stores[index % 2]!.park(identity, each);

        expect(await stores[1]!.withdraw(identity, 'park-' + run + '-3')).toBe(true);
        expect(await stores[0]!.withdraw(identity, 'park-' + run + '-3')).toBe(false);
        // Order kept across the nodes that parked; the one past its window is not taken.
        expect(await stores[1]!.takeDue(identity, Date.now())).toEqual([entries[0], entries[3]]);
        expect(await stores[0]!.takeDue(identity, Date.now())).toEqual([]);
        expect(await stores[0]!.withdraw(identity, entries[0]!.command.id)).toBe(false);
        // Past its window it stays until its caller withdraws it (that caller answers NotDelivered).
        expect(await stores[0]!.withdraw(identity, entries[1]!.command.id)).toBe(true);

        // Two nodes taking while the callers withdraw: each command goes exactly one way.
        const racing = Array.from({ length: 20 }, (_, index) => entry(100 + index, open));
        for (const each of racing) await stores[0]!.park(identity, each);
        const [takenByFirst, takenBySecond, withdrawn] = await Promise.all([
          stores[0]!.takeDue(identity, Date.now()),
          stores[1]!.takeDue(identity, Date.now()),
          Promise.all(racing.map(async (each) => ((await stores[1]!.withdraw(identity, each.command.id)) ? [each.command.id] : []))),
        ]);
        const outcomes = [...takenByFirst, ...takenBySecond].map((each) => each.command.id).concat(withdrawn.flat());
        expect(outcomes.sort()).toEqual(racing.map((each) => each.command.id).sort());
      });
    } else {
      it('has no parked-command store (deliverWithinMs is refused with UnsupportedByTransportError)', () => {
        expect(transport.adapter().parkedCommands).toBeUndefined();
      });
    }

    it('offers the node-loss primitives together or not at all', () => {
      const adapter = transport.adapter();
      expect(typeof adapter.lostNodes).toBe(typeof adapter.claimLostNode);
    });

    it('hands a lost node\'s inbox to one claimer: what it had read first, then what it never read; finishing clears it', async () => {
      const probe = transport.adapter();
      if (typeof probe.claimLostNode !== 'function') return; // no primitives: callers wait for their own timeout (README)
      let stuck = 0;
      const victim = await node('lost', (message) => {
        if (message.kind !== 'command') return undefined;
        stuck++;
        return new Promise<void>(() => undefined); // its charge point never answers: read, never acknowledged
      });
      const survivor = await node('claimer');
      const rival = await node('rival');
      const identity = `CP-LOST-${run}`;
      await victim.adapter.setPresence(identity, 'ocpp1.6', 1_000);
      const read = command(survivor.nodeId, victim.nodeId, 1);
      await survivor.adapter.publish(inboxOf(victim.nodeId), read);
      await waitFor('the victim to read the first command', () => stuck === 1);
      await transport.crash(victim.adapter);
      await waitFor('the victim to be listed as lost', async () => (await survivor.adapter.lostNodes!()).includes(victim.nodeId), {
        timeoutMs: transport.deathWithinMs,
      });
      // Sent once the victim is known dead, so no reader of its can have taken it.
      const unread = command(survivor.nodeId, victim.nodeId, 2);
      await survivor.adapter.publish(inboxOf(victim.nodeId), unread);
      expect(await survivor.adapter.lostNodes!()).not.toContain(survivor.nodeId);
      const claim = await survivor.adapter.claimLostNode!(victim.nodeId);
      expect(claim?.nodeId).toBe(victim.nodeId);
      expect(await rival.adapter.claimLostNode!(victim.nodeId)).toBeNull();

      const handed: Array<{ id: string | undefined; delivered: boolean }> = [];
      for (let entries = await claim!.next(); entries !== null && entries.length > 0; entries = await claim!.next()) {
        for (const entry of entries) {
          handed.push({ id: (entry.message as CommandEnvelope | null)?.id, delivered: entry.delivered });
          await claim!.settle(entry);
        }
      }
      expect(handed).toEqual([
        { id: read.id, delivered: true },
        { id: unread.id, delivered: false },
      ]);
      const finish = await claim!.finish();
      expect(finish).toEqual({ status: 'done', presenceRemoved: 1 });
      await claim!.release();
      expect(await survivor.adapter.lostNodes!()).not.toContain(victim.nodeId);
      expect(await rival.adapter.claimLostNode!(victim.nodeId)).toBeNull();
      expect(await survivor.adapter.getPresence(identity)).toBeNull();
    });

    it('reports metrics and a probe in the documented shape', async () => {
      const subject = await node('metrics');
      const metrics = await subject.adapter.metrics();
      for (const key of ['pendingMessages', 'consumerLag', 'activeSubscriptions'] as const) expect(typeof metrics[key]).toBe('number');
      expect(metrics.activeSubscriptions).toBeGreaterThanOrEqual(2);
      for (const value of Object.values(metrics)) expect(Number.isFinite(value)).toBe(true);
      const probe = await subject.adapter.probe(1_000);
      expect(probe).toMatchObject({ livenessHeld: true, consumerRunning: true, consumerLag: 0, pendingMessages: 0 });
      expect(Object.values(probe.connections).every((connection) => connection.ok)).toBe(true);
      expect(subject.adapter.isHealthy()).toBe(true);
    });
  });
}
