import { describe, expect, it } from '@jest/globals';
import type { ClusterMessage, CommandEnvelope } from '../../lib/cluster/envelope.js';
import { wireVersionOf } from '../../lib/cluster/envelope.js';
import type { PendingEntry } from '../../lib/cluster/event-adapter.interface.js';
import { MAX_HOPS } from '../../lib/cluster/forwarding.js';
import { InMemoryAdapter, InMemoryBus } from '../../lib/cluster/in-memory-adapter.js';
import { settleLostEntry } from '../../lib/cluster/lost-command.js';
import { isAllNodes, type Address } from '../../lib/cluster/address.js';
import { ClusterUnavailableError, NodeLaneMissingError } from '../../lib/protocol/errors.js';
import { stampingWireVersion } from '../../lib/cluster/wire-version.js';
import { waitFor } from '../support/wait.js';

/**
 * The node-loss policy (one for every transport) against the in-memory transport: node "s" settles
 * what the lost node "dead" left; "caller" waits for answers, "owner" holds the charge point now.
 */
async function cluster() {
  const bus = new InMemoryBus();
  const received = new Map<string, ClusterMessage[]>();
  const join = async (nodeId: string) => {
    const adapter = new InMemoryAdapter(bus);
    await adapter.connect(nodeId, { localPresence: () => [] });
    received.set(nodeId, []);
    await adapter.subscribe('node', (message) => void received.get(nodeId)!.push(message));
    return adapter;
  };
  const survivor = await join('s');
  await join('caller');
  const owner = await join('owner');
  return { bus, survivor, owner, received };
}

function command(overrides: Partial<CommandEnvelope> = {}): CommandEnvelope {
  return { kind: 'command', id: 'c1', origin: 'caller', identity: 'CP', action: 'Reset', payload: {}, deadline: Date.now() + 60_000, ...overrides };
}

const entry = (message: ClusterMessage | null, delivered = false): PendingEntry => ({ message, delivered });

describe('what becomes of a lost node\'s inbox entries', () => {
  it('forwards a command the lost node never read to the charge point\'s new owner, one hop more', async () => {
    const { survivor, owner, received } = await cluster();
    await owner.setPresence('CP', 'ocpp1.6', Date.now());
    expect(await settleLostEntry(survivor, 's', 'dead', entry(command({ hops: 1 })))).toBe('forwarded');
    const forwarded = await waitFor('the owner to get it', () => received.get('owner')!.find((message) => message.kind === 'command'));
    expect(forwarded).toMatchObject({ id: 'c1', hops: 2 });
    expect(received.get('caller')).toEqual([]);
  });

  it('answers a command the lost node had read as maybe delivered, and never forwards it', async () => {
    const { survivor, owner, received } = await cluster();
    await owner.setPresence('CP', 'ocpp1.6', Date.now());
    expect(await settleLostEntry(survivor, 's', 'dead', entry(command(), true))).toBe('answered');
    const reply = await waitFor('the caller to hear', () => received.get('caller')!.find((message) => message.kind === 'reply'));
    expect(reply).toMatchObject({ id: 'c1', from: 's', outcome: { status: 'notConnected', maybeDelivered: true } });
    expect(received.get('owner')).toEqual([]);
  });

  it('answers "node died" when nobody holds the charge point, and "timed out" past the deadline', async () => {
    const { survivor, received } = await cluster();
    expect(await settleLostEntry(survivor, 's', 'dead', entry(command()))).toBe('answered');
    expect(await settleLostEntry(survivor, 's', 'dead', entry(command({ id: 'late', deadline: Date.now() - 1 }), true))).toBe('answered');
    await waitFor('both answers', () => received.get('caller')!.length === 2);
    expect(received.get('caller')).toEqual([
      expect.objectContaining({ id: 'c1', outcome: { status: 'notConnected', reason: 'node dead died' } }),
      expect.objectContaining({ id: 'late', outcome: { status: 'timeout', sent: true } }),
    ]);
  });

  it('parks again a parked command it never read whose charge point is gone, one attempt more, answering nobody', async () => {
    const { bus, survivor, received } = await cluster();
    const deliverBy = Date.now() + 30_000;
    const taken = command({ id: 'p1', hops: 1, deadline: Date.now() + 5_000, parked: { deliverBy, timeoutMs: 5_000 } });
    expect(await settleLostEntry(survivor, 's', 'dead', entry(taken))).toBe('forwarded');
    const [parked] = await bus.parked.takeDue('CP', Date.now());
    expect(parked).toMatchObject({ deliverBy, timeoutMs: 5_000, command: { id: 'p1', deadline: deliverBy + 5_000, parked: { deliverBy, timeoutMs: 5_000, attempt: 1 } } });
    expect(parked!.command.hops).toBeUndefined();
    expect([...received.values()].flat()).toEqual([]);
  });

  it('answers a parked command as usual when the lost node had read it or its window is over', async () => {
    const { bus, survivor, received } = await cluster();
    const read = command({ id: 'read', parked: { deliverBy: Date.now() + 30_000, timeoutMs: 5_000 } });
    const over = command({ id: 'over', parked: { deliverBy: Date.now() - 1, timeoutMs: 5_000 } });
    expect(await settleLostEntry(survivor, 's', 'dead', entry(read, true))).toBe('answered');
    expect(await settleLostEntry(survivor, 's', 'dead', entry(over))).toBe('answered');
    await waitFor('both answers', () => received.get('caller')!.length === 2);
    expect(received.get('caller')).toEqual([
      expect.objectContaining({ id: 'read', outcome: expect.objectContaining({ status: 'notConnected', maybeDelivered: true }) }),
      expect.objectContaining({ id: 'over', outcome: { status: 'notConnected', reason: 'node dead died' } }),
    ]);
    expect(await bus.parked.takeDue('CP', 0)).toEqual([]);
  });

  it('does not forward past the hop limit', async () => {
    const { survivor, owner, received } = await cluster();
    await owner.setPresence('CP', 'ocpp1.6', Date.now());
    expect(await settleLostEntry(survivor, 's', 'dead', entry(command({ hops: MAX_HOPS })))).toBe('answered');
    await waitFor('the caller to hear', () => received.get('caller')!.length === 1);
    expect(received.get('owner')).toEqual([]);
  });

  it('drops what nobody waits for: replies and evictions for the lost node, commands of dead callers, unreadable entries', async () => {
    const { survivor, received } = await cluster();
    const reply: ClusterMessage = { kind: 'reply', id: 'r', from: 'caller', identity: 'CP', outcome: { status: 'result', payload: {} } };
    const evict: ClusterMessage = { kind: 'evict', identity: 'CP', epoch: 1, newOwner: 'owner' };
    for (const message of [reply, evict, command({ origin: 'gone-too' }), command({ origin: 'dead' }), null]) {
      expect(await settleLostEntry(survivor, 's', 'dead', entry(message))).toBe('dropped');
    }
    expect([...received.values()].flat()).toEqual([]);
  });

  it('drops the answer to a caller whose replies lane is missing (it was taken over too), but not on other failures', async () => {
    const { survivor, received } = await cluster();
    // The caller's node is alive by its record, but its transport refuses the answer as the NATS one does.
    const refusing = (error: Error) =>
      Object.assign(Object.create(survivor) as InMemoryAdapter, {
        publish: async (to: Address, message: ClusterMessage) => {
          if (!isAllNodes(to) && to.node === 'caller' && to.lane === 'replies') throw error;
          return survivor.publish(to, message);
        },
      });
    expect(await settleLostEntry(refusing(new NodeLaneMissingError('caller', 'replies', 'NATS')), 's', 'dead', entry(command(), true))).toBe('dropped');
    const outage = new ClusterUnavailableError('NATS is unreachable');
    await expect(settleLostEntry(refusing(outage), 's', 'dead', entry(command()))).rejects.toBe(outage);
    expect([...received.values()].flat()).toEqual([]);
  });

  describe('wire versions (the survivor publishes through its version stamp, as a node does)', () => {
    it('answers a version 1 caller in version 1, and forwards its command in version 1', async () => {
      const { survivor, owner, received } = await cluster();
      const stamped = stampingWireVersion(survivor, 2);
      expect(await settleLostEntry(stamped, 's', 'dead', entry(command()), 2)).toBe('answered');
      const reply = await waitFor('the caller to hear', () => received.get('caller')!.find((message) => message.kind === 'reply'));
      expect(wireVersionOf(reply)).toBe(1);
      await owner.setPresence('CP', 'ocpp1.6', Date.now());
      expect(await settleLostEntry(stamped, 's', 'dead', entry(command({ id: 'c2' })), 2)).toBe('forwarded');
      const forwarded = await waitFor('the owner to get it', () => received.get('owner')!.find((message) => message.kind === 'command'));
      expect(wireVersionOf(forwarded)).toBe(1);
    });

    it('answers a command newer than the survivor from its frame ("node died"), never forwarding it', async () => {
      const { survivor, owner, received } = await cluster();
      await owner.setPresence('CP', 'ocpp1.6', Date.now());
      const stamped = stampingWireVersion(survivor, 2);
      expect(await settleLostEntry(stamped, 's', 'dead', entry(command({ v: 3 })), 2)).toBe('answered');
      expect(await settleLostEntry(stamped, 's', 'dead', entry(command({ id: 'c2', v: 3 }), true), 2)).toBe('answered');
      await waitFor('both answers', () => received.get('caller')!.length === 2);
      expect(received.get('caller')).toEqual([
        expect.objectContaining({ id: 'c1', v: 2, outcome: { status: 'notConnected', reason: 'node dead died' } }),
        expect.objectContaining({ id: 'c2', v: 2, outcome: expect.objectContaining({ status: 'notConnected', maybeDelivered: true }) }),
      ]);
      expect(received.get('owner')).toEqual([]);
    });
  });
});
