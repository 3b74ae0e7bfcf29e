import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { inboxOf } from '../../lib/cluster/address.js';
import type { ClusterMessage, CommandEnvelope } from '../../lib/cluster/envelope.js';
import type { PresenceRecord, PresenceSnapshotSource } from '../../lib/cluster/event-adapter.interface.js';
import type { ClusterLogger } from '../../lib/cluster/logger.js';
import { SILENT_LOGGER } from '../../lib/cluster/logger.js';
import { NatsTransport } from '../../lib/nats/nats-transport.js';
import { startNatsServer, stopAllNatsServers, type NatsServer } from '../support/nats-server.js';
import { waitFor } from '../support/wait.js';

/**
 * The NATS transport across restarts of nats-server, with its store kept (streams, buckets and
 * what they held survive) and without it (everything is gone): every node makes its part whole
 * again, its sockets are found again, and commands flow again.
 */

const LOGGER: ClusterLogger = process.env.OCPP_NATS_DEBUG ? { log: console.log, warn: console.warn, error: console.error, debug: console.log } : SILENT_LOGGER;

let server: NatsServer;
const started: NatsTransport[] = [];

/** A node holding `identities` as local sockets, recording what it receives. */
async function node(nodeId: string, identities: string[]) {
  const local: PresenceRecord[] = [];
  const source: PresenceSnapshotSource = { localPresence: () => local };
  const adapter = new NatsTransport({ servers: server.url, nodeTtlMs: 1_500, takeoverIntervalMs: 200, requestTimeoutMs: 1_000, logger: LOGGER });
  await adapter.connect(nodeId, source);
  started.push(adapter);
  const received: ClusterMessage[] = [];
  await adapter.subscribe('node', (message) => void received.push(message));
  await adapter.subscribe('allNodes', () => undefined);
  for (const identity of identities) {
    const { record } = await adapter.setPresence(identity, 'ocpp1.6', Date.now());
    local.push(record);
  }
  return { nodeId, adapter, received };
}

function command(origin: string, identity: string, index: number): CommandEnvelope {
  return { kind: 'command', id: `${origin}-${index}`, origin, identity, action: 'Reset', payload: {}, deadline: Date.now() + 60_000 };
}

describe.each([{ wipe: false }, { wipe: true }])('the NATS transport when nats-server restarts (store wiped: $wipe)', ({ wipe }) => {
  beforeAll(async () => {
    server = await startNatsServer();
  }, 30_000);
  afterEach(async () => {
    await Promise.all(started.splice(0).map((adapter) => adapter.disconnect().catch(() => undefined)));
  });
  afterAll(stopAllNatsServers, 30_000);

  it('finds every socket again, reports unhealthy while NATS is away, and carries commands after', async () => {
    const a = await node(`a-${wipe}`, [`A-1-${wipe}`, `A-2-${wipe}`]);
    const b = await node(`b-${wipe}`, [`B-1-${wipe}`]);
    expect(await a.adapter.getPresence(`B-1-${wipe}`)).toMatchObject({ nodeId: b.nodeId });

    await server.stop();
    await waitFor('both nodes to report NATS unreachable', () => !a.adapter.isHealthy() && !b.adapter.isHealthy());
    expect(a.adapter.healthIssue()).toMatch(/NATS/);
    // Readiness reads the probe: NATS down, within its bound.
    expect((await a.adapter.probe(500)).connections.nats).toMatchObject({ ok: false });
    if (wipe) server.wipeStore();
    await server.start();

    await waitFor('both nodes healthy again', () => a.adapter.isHealthy() && b.adapter.isHealthy(), { timeoutMs: 20_000 });
    for (const [reader, identity, owner] of [
      [a, `B-1-${wipe}`, b.nodeId],
      [b, `A-1-${wipe}`, a.nodeId],
      [b, `A-2-${wipe}`, a.nodeId],
    ] as const) {
      await waitFor(`${reader.nodeId} to find ${identity} on ${owner}`, async () => (await reader.adapter.getPresence(identity).catch(() => null))?.nodeId === owner, { timeoutMs: 20_000 });
    }
    await a.adapter.publish(inboxOf(b.nodeId), command(a.nodeId, `B-1-${wipe}`, 1));
    await waitFor('the command to reach B', () => b.received.some((message) => message.kind === 'command' && message.id === `${a.nodeId}-1`));
    expect(await a.adapter.isNodeAlive(b.nodeId)).toBe(true);
    // The lease is proven by a heartbeat answered within the TTL (1.5 s here); on loaded cores one
    // late answer right after the restart leaves it unproven for a beat (failed once in CI at a
    // single instant), so the node must prove it again within a bound, not at this very moment.
    await waitFor('a to prove its lease again', async () => (await a.adapter.probe(2_000)).livenessHeld, { timeoutMs: 15_000 });
    expect(await a.adapter.probe(2_000)).toMatchObject({ consumerRunning: true });
  }, 60_000);
});
