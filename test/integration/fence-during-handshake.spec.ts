import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WebSocket } from 'ws';
import type { PresenceClaim, PresenceSnapshotSource } from '../../lib/cluster/event-adapter.interface.js';
import { HandlerRegistry } from '../../lib/cluster/handler-registry.js';
import { InMemoryAdapter, InMemoryBus } from '../../lib/cluster/in-memory-adapter.js';
import { SILENT_LOGGER } from '../../lib/cluster/logger.js';
import { createNode, type NodeHost } from '../../lib/create-node.js';
import type { OcppProtocol } from '../../lib/protocol/protocol.js';
import { resolveOptions } from '../../lib/resolve-options.js';
import { handshake } from '../support/handshake.js';
import { waitFor, withTimeout } from '../support/wait.js';

/**
 * The embedded transport, with what a lease-holding transport (Redis, NATS) does to a node:
 * it tells the node it was taken over (`fenced`) and later that it rejoined; and a presence
 * claim that stays in flight until the test lets it land (a claim sent to a frozen server).
 */
class LeaseTellingAdapter extends InMemoryAdapter {
  private source: PresenceSnapshotSource | null = null;
  private heldClaim: { landed: () => void } | null = null;
  holdNextClaim = false;

  override async connect(nodeId: string, source: PresenceSnapshotSource): Promise<void> {
    this.source = source;
    await super.connect(nodeId, source);
  }

  override async setPresence(identity: string, protocol: OcppProtocol, connectedAt: number): Promise<PresenceClaim> {
    if (this.holdNextClaim) {
      this.holdNextClaim = false;
      await new Promise<void>((landed) => (this.heldClaim = { landed }));
    }
    return super.setPresence(identity, protocol, connectedAt);
  }

  get claimInFlight(): boolean {
    return this.heldClaim !== null;
  }

  landClaim(): void {
    this.heldClaim?.landed();
    this.heldClaim = null;
  }

  tell(change: 'fenced' | 'rejoined'): void {
    this.source!.onLeaseChange!(change);
  }
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startNode(adapter: InMemoryAdapter): Promise<{ host: NodeHost; url: string }> {
  const http: Server = createServer();
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const host = createNode({ options: resolveOptions({ nodeId: 'fenced-node', pingIntervalMs: 0 }), adapter, handlers: new HandlerRegistry(), logger: SILENT_LOGGER });
  await host.start(http);
  cleanups.push(async () => {
    await host.stop();
    await new Promise((resolve) => http.close(resolve));
  });
  return { host, url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}/ocpp` };
}

function closeOf(ws: WebSocket): Promise<number> {
  return withTimeout(new Promise((resolve) => ws.once('close', (code) => resolve(code))), 5_000, 'the socket to close');
}

describe('a handshake whose claim lands after the node was taken over', () => {
  for (const rejoinedFirst of [false, true]) {
    it(`is closed with 1012, never served, and leaves no presence entry${rejoinedFirst ? ' (the node rejoined before the socket opened)' : ''}`, async () => {
      const adapter = new LeaseTellingAdapter(new InMemoryBus());
      const { host, url } = await startNode(adapter);
      adapter.holdNextClaim = true;
      const opening = handshake(`${url}/CP-LATE`, 'ocpp1.6');
      await waitFor('the claim in flight', () => adapter.claimInFlight);

      // Taken over meanwhile: the node closes every socket it has (none yet) and serves nothing.
      adapter.tell('fenced');
      if (rejoinedFirst) adapter.tell('rejoined');
      adapter.landClaim();

      const outcome = await opening;
      expect(outcome.kind).toBe('open');
      const ws = (outcome as { ws: WebSocket }).ws;
      expect(await closeOf(ws)).toBe(1012);
      expect(host.node.listLocal()).toEqual([]);
      await waitFor('the claim given back', async () => (await adapter.getPresence('CP-LATE')) === null);
    });
  }

  it('a handshake claimed in the current incarnation is served as before', async () => {
    const adapter = new LeaseTellingAdapter(new InMemoryBus());
    const { host, url } = await startNode(adapter);
    adapter.tell('fenced');
    adapter.tell('rejoined');
    const outcome = await handshake(`${url}/CP-NEW`, 'ocpp1.6');
    expect(outcome.kind).toBe('open');
    await waitFor('registered', () => host.node.isConnectedLocally('CP-NEW'));
    expect((await adapter.getPresence('CP-NEW'))?.nodeId).toBe('fenced-node');
    (outcome as { ws: WebSocket }).ws.terminate();
  });
});
