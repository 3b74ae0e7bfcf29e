import { describe, expect, it } from '@jest/globals';
import { CallChecks } from '../../lib/cluster/call-checks.js';
import { CallRouter } from '../../lib/cluster/call-router.js';
import { DrainController } from '../../lib/cluster/drain.js';
import type { ClusterMessage, CommandEnvelope } from '../../lib/cluster/envelope.js';
import { WIRE_VERSION } from '../../lib/cluster/envelope.js';
import { MAX_HOPS } from '../../lib/cluster/forwarding.js';
import { HandlerRegistry } from '../../lib/cluster/handler-registry.js';
import { InMemoryAdapter, InMemoryBus } from '../../lib/cluster/in-memory-adapter.js';
import { LocalRegistry } from '../../lib/cluster/local-registry.js';
import type { LocalConnection } from '../../lib/cluster/local-registry.js';
import { SILENT_LOGGER } from '../../lib/cluster/logger.js';
import { NOOP_METRICS_SINK } from '../../lib/cluster/metrics-sink.js';
import { NodeMetrics } from '../../lib/cluster/node-metrics.js';
import { ParkedCalls } from '../../lib/cluster/parked-calls.js';
import { OutboundCalls } from '../../lib/cluster/outbound-calls.js';
import { OwnerCache } from '../../lib/cluster/owner-cache.js';
import { RemoteCalls } from '../../lib/cluster/remote-calls.js';
import { ClusterUnavailableError, LeaseLostError, NotConnectedError, OcppTimeoutError, OcppValidationError, ProtocolMismatchError } from '../../lib/protocol/errors.js';
import type { OcppProtocol } from '../../lib/protocol/protocol.js';
import type { RpcSession } from '../../lib/protocol/rpc-session.js';
import { SchemaValidator } from '../../lib/protocol/validator.js';
import { waitFor } from '../support/wait.js';

/** An in-memory transport that cannot vouch for its presence (as Redis right after a stall). */
class DoubtfulAdapter extends InMemoryAdapter {
  presenceDoubt(): string {
    return 'presence is being rebuilt';
  }
}

/** A socket of this node that is idle and closes at once (the router only looks at who holds it). */
function idleConnection(identity: string, protocol: OcppProtocol = 'ocpp1.6'): LocalConnection {
  const rpc = { inFlightCall: null, queuedCalls: 0, close: async () => undefined } as unknown as RpcSession;
  return { identity, protocol, epoch: 1, connectedAt: Date.now(), session: undefined, rpc };
}

/** Node "a" (the router under test) and node "b" on one in-memory bus; b records what reaches its inbox. */
async function cluster({ doubtful = false, validator = null as SchemaValidator | null, ownerCacheMs = 10_000 } = {}) {
  const bus = new InMemoryBus();
  const adapter = doubtful ? new DoubtfulAdapter(bus) : new InMemoryAdapter(bus);
  await adapter.connect('a', { localPresence: () => [] });
  const b = new InMemoryAdapter(bus);
  await b.connect('b', { localPresence: () => [] });
  const reachedB: ClusterMessage[] = [];
  await b.subscribe('node', (message) => {
    reachedB.push(message);
  });
  const registry = new LocalRegistry();
  const owners = new OwnerCache(ownerCacheMs);
  const checks = new CallChecks({ callTimeoutMs: 5_000, maxIdentityLength: 48 }, validator);
  const drain = new DrainController({
    nodeId: 'a',
    adapter,
    registry,
    options: { callTimeoutMs: 5_000, drain: { windowMs: 0, settleMs: 0 } },
    logger: SILENT_LOGGER,
    activeCommands: () => 0,
    leaveCluster: async () => undefined,
  });
  const router = new CallRouter({ nodeId: 'a', adapter, registry, drain, owners, checks, metricsSink: NOOP_METRICS_SINK });
  const remoteCalls = new RemoteCalls();
  const metrics = new NodeMetrics(NOOP_METRICS_SINK, new HandlerRegistry());
  const parkedCalls = new ParkedCalls({ nodeId: 'a', adapter, remoteCalls, logger: SILENT_LOGGER, deliverHere: () => undefined });
  const calls = new OutboundCalls({ nodeId: 'a', adapter, router, remoteCalls, checks, metrics, isStopping: () => false, parkedCalls, wireVersion: WIRE_VERSION });
  return { bus, adapter, b, reachedB, registry, owners, drain, router, remoteCalls, calls };
}

const request = (protocol?: OcppProtocol, payload: Record<string, unknown> = { type: 'Hard' }) => ({
  protocol,
  action: 'Reset',
  payload,
  deadline: Date.now() + 5_000,
});

function command(overrides: Partial<CommandEnvelope> = {}): CommandEnvelope {
  return { kind: 'command', id: 'c-1', origin: 'x', identity: 'CP-B', action: 'Reset', payload: { type: 'Hard' }, deadline: Date.now() + 5_000, ...overrides };
}

const openGate = { mayWrite: () => true, refusal: () => new LeaseLostError('a') };

describe('CallRouter.route (the one routing decision of sendToClient, sendMessage and broadcastBatch)', () => {
  it('takes a socket of this node before asking the transport', async () => {
    const { router, registry } = await cluster();
    const connection = idleConnection('CP-A');
    registry.set(connection);
    await expect(router.route('CP-A', request())).resolves.toEqual({ kind: 'local', connection });
  });

  it('sends to the owner that presence names, and remembers it', async () => {
    const { router, b, owners } = await cluster();
    await b.setPresence('CP-B', 'ocpp1.6', Date.now());
    const route = await router.route('CP-B', request('ocpp1.6'));
    expect(route).toMatchObject({ kind: 'remote', owner: { nodeId: 'b', identity: 'CP-B' } });
    expect(owners.get('CP-B')?.nodeId).toBe('b');
  });

  it('uses a remembered owner while its node lives (a cache hit reads no presence)', async () => {
    const { router, b, bus } = await cluster();
    await b.setPresence('CP-B', 'ocpp1.6', Date.now());
    await router.route('CP-B', request());
    // Presence now says nothing; the fresh cache entry still routes to b (a stale one costs a hop, never a call).
    bus.presence.delete('CP-B');
    await expect(router.route('CP-B', request())).resolves.toMatchObject({ kind: 'remote', owner: { nodeId: 'b' } });
  });

  it('forgets a remembered owner whose node left, and asks presence again (a cache miss)', async () => {
    const { router, b, owners } = await cluster();
    await b.setPresence('CP-B', 'ocpp1.6', Date.now());
    await router.route('CP-B', request());
    await b.disconnect();
    await expect(router.route('CP-B', request())).rejects.toBeInstanceOf(NotConnectedError);
    expect(owners.get('CP-B')).toBeUndefined();
  });

  it('asks presence again when the remembered connection speaks another protocol', async () => {
    const { router, b } = await cluster();
    await b.setPresence('CP-B', 'ocpp1.6', Date.now());
    await router.route('CP-B', request('ocpp1.6'));
    await b.setPresence('CP-B', 'ocpp2.0.1', Date.now());
    await expect(router.route('CP-B', request('ocpp2.0.1'))).resolves.toMatchObject({ owner: { protocol: 'ocpp2.0.1' } });
  });

  it('refuses a protocol mismatch with the owner before anything crosses', async () => {
    const { router, b, calls, reachedB } = await cluster();
    await b.setPresence('CP-B', 'ocpp1.6', Date.now());
    await expect(router.route('CP-B', request('ocpp2.0.1'))).rejects.toBeInstanceOf(ProtocolMismatchError);
    await expect(calls.sendToClient('CP-B', 'ocpp2.0.1', 'Reset', { type: 'Hard' })).rejects.toBeInstanceOf(ProtocolMismatchError);
    expect(reachedB).toEqual([]);
  });

  it('validates the request against the owner connection protocol before anything crosses (sendToClient and broadcastBatch alike)', async () => {
    const { b, calls, reachedB } = await cluster({ validator: new SchemaValidator() });
    await b.setPresence('CP-B', 'ocpp1.6', Date.now());
    await expect(calls.sendToClient('CP-B', undefined, 'Reset', { type: 'Sideways' })).rejects.toBeInstanceOf(OcppValidationError);
    const [outcome] = await calls.broadcastBatch(['CP-B'], 'Reset', { type: 'Sideways' });
    expect(outcome).toMatchObject({ identity: 'CP-B', status: 'rejected' });
    expect((outcome as { error: Error }).error).toBeInstanceOf(OcppValidationError);
    expect(reachedB).toEqual([]);
  });

  it('says not connected when presence names nobody', async () => {
    const { router } = await cluster();
    await expect(router.route('CP-NONE', request())).rejects.toBeInstanceOf(NotConnectedError);
  });

  it('says the cluster is unavailable, not "not connected", while the transport doubts its presence', async () => {
    const { router, calls } = await cluster({ doubtful: true });
    await expect(router.route('CP-NONE', request())).rejects.toBeInstanceOf(ClusterUnavailableError);
    const [outcome] = await calls.broadcastBatch(['CP-NONE'], 'Reset', { type: 'Hard' });
    expect((outcome as { error: Error }).error).toBeInstanceOf(ClusterUnavailableError);
  });

  it('a caller waits for the socket of a charge point connecting to this node right now', async () => {
    const { router, adapter, registry } = await cluster();
    registry.beginHandshake('CP-ARRIVING');
    await adapter.setPresence('CP-ARRIVING', 'ocpp1.6', Date.now());
    const routed = router.route('CP-ARRIVING', request());
    // The handshake completes: its socket is served here.
    registry.set(idleConnection('CP-ARRIVING'));
    registry.endHandshake('CP-ARRIVING');
    await expect(routed).resolves.toMatchObject({ kind: 'local', connection: { identity: 'CP-ARRIVING' } });
  });

  it('says unavailable, not "not connected", when a handshake here has not opened its socket by the deadline', async () => {
    const { router, calls, adapter, registry } = await cluster();
    registry.beginHandshake('CP-MOVING');
    await adapter.setPresence('CP-MOVING', 'ocpp1.6', Date.now());
    const soon = () => ({ ...request(), deadline: Date.now() + 200 });
    await expect(router.route('CP-MOVING', soon())).rejects.toThrow('CP-MOVING is connecting to node a right now');
    // The batch's call waits for the handshake until the deadline, and its own guard against a
    // stalled route ends at that same deadline: whichever timer fires first answers, both with
    // "never sent" (unavailable, or timed out and not sent) — never "not connected".
    const [outcome] = await calls.broadcastBatch(['CP-MOVING'], 'Reset', { type: 'Hard' }, { timeoutMs: 200 });
    const batchError = (outcome as { error: Error }).error;
    expect(batchError).not.toBeInstanceOf(NotConnectedError);
    expect(batchError instanceof ClusterUnavailableError || (batchError instanceof OcppTimeoutError && !batchError.sent)).toBe(true);
    await expect(router.forward(command({ identity: 'CP-MOVING' }), openGate)).resolves.toMatchObject({ status: 'failed', errorCode: 'OCPP_CLUSTER_UNAVAILABLE' });
    // Given up (or opened and then closed): a stale entry naming this node is "not connected" again.
    registry.endHandshake('CP-MOVING');
    await expect(router.route('CP-MOVING', request())).rejects.toBeInstanceOf(NotConnectedError);
    await expect(router.forward(command({ identity: 'CP-MOVING' }), openGate)).resolves.toEqual({ status: 'notConnected' });
  });

  it('waits for the new owner of a charge point this node handed over while draining', async () => {
    const { router, registry, drain, adapter, b } = await cluster();
    registry.set(idleConnection('CP-D'));
    await adapter.setPresence('CP-D', 'ocpp1.6', Date.now());
    const draining = drain.run(0);
    await waitFor('CP-D handed over', () => drain.isHandedOver('CP-D'));
    expect(router.servingConnection('CP-D')).toBeUndefined();
    const routed = router.route('CP-D', request());
    // Presence still names this node; the charge point reconnects on b a moment later.
    await b.setPresence('CP-D', 'ocpp1.6', Date.now());
    await expect(routed).resolves.toMatchObject({ kind: 'remote', owner: { nodeId: 'b' } });
    await draining;
  });
});

describe('CallRouter.forward (the owner side of the same policy)', () => {
  it('sends the command on to the current owner, one hop more', async () => {
    const { router, b, reachedB } = await cluster();
    await b.setPresence('CP-B', 'ocpp1.6', Date.now());
    await expect(router.forward(command({ hops: MAX_HOPS - 1 }), openGate)).resolves.toBeNull();
    await waitFor('the forwarded command to reach b', () => reachedB.length === 1);
    expect(reachedB[0]).toMatchObject({ kind: 'command', id: 'c-1', hops: MAX_HOPS });
  });

  it('stops at the hop limit: the caller hears not connected', async () => {
    const { router, b, reachedB } = await cluster();
    await b.setPresence('CP-B', 'ocpp1.6', Date.now());
    await expect(router.forward(command({ hops: MAX_HOPS }), openGate)).resolves.toEqual({ status: 'notConnected' });
    expect(reachedB).toEqual([]);
  });

  it('does not forward past the deadline', async () => {
    const { router, b, reachedB } = await cluster();
    await b.setPresence('CP-B', 'ocpp1.6', Date.now());
    await expect(router.forward(command({ deadline: Date.now() - 1 }), openGate)).resolves.toEqual({ status: 'notConnected' });
    expect(reachedB).toEqual([]);
  });

  it('writes nothing when the lease gate refuses (a takeover answered the caller already)', async () => {
    const { router, b, reachedB } = await cluster();
    await b.setPresence('CP-B', 'ocpp1.6', Date.now());
    const closed = { mayWrite: () => false, refusal: () => new LeaseLostError('a') };
    await expect(router.forward(command(), closed)).resolves.toMatchObject({ status: 'failed', errorCode: 'OCPP_LEASE_LOST' });
    expect(reachedB).toEqual([]);
  });
});
