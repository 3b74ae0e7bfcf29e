import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { EventAdapterInterface, PresenceClaim, PresenceRecord } from '../../lib/cluster/event-adapter.interface.js';
import { SILENT_LOGGER } from '../../lib/cluster/logger.js';
import { NatsTransport } from '../../lib/nats/nats-transport.js';
import { startNatsServer, stopAllNatsServers, type NatsServer } from '../support/nats-server.js';

/**
 * A handshake given up after its claim (the client left a busy node and stays connected where it
 * was): the node gives the claim up as the cluster layer does (connections.ts: `releaseClaim`
 * where the transport has it, else `removePresence`). The owner the claim displaced must get the
 * identity back, or its open socket goes unlisted and other nodes answer NotConnected for it.
 */

/** What the node does with a claim whose socket never opened. */
function giveUp(adapter: EventAdapterInterface, claim: PresenceClaim): Promise<boolean> {
  return adapter.releaseClaim ? adapter.releaseClaim(claim) : adapter.removePresence(claim.record.identity, claim.record.epoch);
}

describe('NATS presence when a claim is given up', () => {
  let server: NatsServer;
  const transports: NatsTransport[] = [];
  const local = new Map<string, PresenceRecord[]>();

  async function startTransport(nodeId: string): Promise<NatsTransport> {
    const transport = new NatsTransport({ servers: server.url, prefix: 'release', logger: SILENT_LOGGER });
    transports.push(transport);
    await transport.connect(nodeId, { localPresence: () => local.get(nodeId) ?? [] });
    return transport;
  }

  beforeAll(async () => {
    server = await startNatsServer();
  });

  afterAll(async () => {
    await Promise.all(transports.map((transport) => transport.disconnect().catch(() => undefined)));
    await stopAllNatsServers();
  });

  it('gives the identity back to the live owner it displaced', async () => {
    const a = await startTransport('release-a');
    const b = await startTransport('release-b');
    const owner = await a.setPresence('GIVEN-UP-1', 'ocpp1.6', Date.now());
    const given = await b.setPresence('GIVEN-UP-1', 'ocpp1.6', Date.now());
    expect(given.previous).toEqual(owner.record);

    expect(await giveUp(b, given)).toBe(true);
    expect(await b.getPresence('GIVEN-UP-1')).toEqual(owner.record);
    expect((await b.listPresence()).find((record) => record.identity === 'GIVEN-UP-1')).toEqual(owner.record);
  });

  it('never undoes a newer claim, and removes the entry when it displaced nobody', async () => {
    const a = await startTransport('release-c');
    const b = await startTransport('release-d');
    await a.setPresence('GIVEN-UP-2', 'ocpp1.6', Date.now());
    const given = await b.setPresence('GIVEN-UP-2', 'ocpp1.6', Date.now());
    const newer = await a.setPresence('GIVEN-UP-2', 'ocpp1.6', Date.now());
    expect(await giveUp(b, given)).toBe(false);
    expect(await b.getPresence('GIVEN-UP-2')).toEqual(newer.record);

    const alone = await b.setPresence('GIVEN-UP-3', 'ocpp2.0.1', Date.now());
    expect(alone.previous).toBeNull();
    expect(await giveUp(b, alone)).toBe(true);
    expect(await a.getPresence('GIVEN-UP-3')).toBeNull();
  });

  it('gives an identity back to an older socket of its own node only while that socket is open', async () => {
    const a = await startTransport('release-e');
    const older = await a.setPresence('GIVEN-UP-4', 'ocpp1.6', Date.now());
    local.set('release-e', [older.record]);
    const given = await a.setPresence('GIVEN-UP-4', 'ocpp1.6', Date.now());
    expect(await giveUp(a, given)).toBe(true);
    expect(await a.getPresence('GIVEN-UP-4')).toEqual(older.record);

    // The older socket closed while the newer claim held the entry: its removal found nothing to remove.
    const again = await a.setPresence('GIVEN-UP-4', 'ocpp1.6', Date.now());
    local.set('release-e', []);
    expect(await a.removePresence('GIVEN-UP-4', older.record.epoch)).toBe(false);
    expect(await giveUp(a, again)).toBe(true);
    expect(await a.getPresence('GIVEN-UP-4')).toBeNull();
  });
});
