import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { BROADCAST_CHANNEL, nodeChannel, type ClusterMessage, type CommandEnvelope } from '../../lib/cluster/envelope.js';
import type { EventAdapterInterface, PresenceSnapshotSource } from '../../lib/cluster/event-adapter.interface.js';
import { waitFor } from '../support/wait.js';

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
      await adapter.subscribe(nodeChannel(nodeId), handler);
      await adapter.subscribe(BROADCAST_CHANNEL, handler);
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
      for (const message of sent.slice(0, 25)) await sender.adapter.publish(nodeChannel(receiver.nodeId), message);
      await sender.adapter.publishBatch(sent.slice(25).map((message) => ({ channel: nodeChannel(receiver.nodeId), message })));
      await waitFor('all 50 commands', () => receiver.received.length >= 50);
      expect(receiver.received.map((message) => (message as CommandEnvelope).id)).toEqual(sent.map((message) => message.id));
      expect(sender.received.filter((message) => message.kind === 'command')).toEqual([]);
    });

    it('counts a message as pending until its handler settles', async () => {
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const receiver = await node('acking', (message) => (message.kind === 'command' ? held : undefined));
      const sender = await node('sender');
      await sender.adapter.publish(nodeChannel(receiver.nodeId), command(sender.nodeId, receiver.nodeId, 1));
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

    it('tells live nodes from dead ones, and reads a dead node\'s charge points as absent', async () => {
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
      expect(await observer.adapter.getPresence(identity)).toBeNull();
      expect((await observer.adapter.getPresenceBatch([identity])).size).toBe(0);
      expect((await observer.adapter.listPresence()).filter((record) => record.identity === identity)).toEqual([]);
    });

    it('reaches every node, the publisher included, with a broadcast', async () => {
      const nodes = [await node('b1'), await node('b2'), await node('b3')];
      const message: ClusterMessage = { kind: 'broadcast', id: `bc-${run}`, origin: nodes[0]!.nodeId, action: 'ClearCache', payload: {}, deadline: Date.now() + 60_000 };
      await nodes[0]!.adapter.publish(BROADCAST_CHANNEL, message);
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
