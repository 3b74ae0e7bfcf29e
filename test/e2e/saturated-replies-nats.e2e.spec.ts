import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connectedChargePoint } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { startModuleApp } from '../support/ocpp-test-app.js';
import type { TestApp } from '../support/ocpp-test-app.js';
import { NatsTransport } from '../../lib/nats/nats-transport.js';
import { startNatsServer, stopAllNatsServers, type NatsServer } from '../support/nats-server.js';
import { waitFor } from '../support/wait.js';

/** saturated-replies.e2e.spec.ts on the NATS transport: its replies stream is read apart from the inbox. */
describe('a node whose inbox is full of commands waiting on slow charge points (NATS)', () => {
  let nats: NatsServer;
  let busy: TestApp;
  let other: TestApp;
  const clients: RpcClient[] = [];
  const held: Array<Promise<unknown>> = [];

  beforeAll(async () => {
    nats = await startNatsServer();
    busy = await startModuleApp({ nodeId: 'saturated-busy', adapter: new NatsTransport({ servers: nats.url, maxInFlight: 2, readBatchSize: 2 }) });
    other = await startModuleApp({ nodeId: 'saturated-other', adapter: new NatsTransport({ servers: nats.url }) });
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close({ force: true }).catch(() => undefined)));
    for (const app of [busy, other]) await app?.close();
    await Promise.allSettled(held);
    await stopAllNatsServers();
  });

  async function chargerOn(app: TestApp, identity: string, answer: (() => unknown) | null): Promise<void> {
    const client = await connectedChargePoint(app.wsUrl, identity);
    clients.push(client);
    // null: a charge point that never answers.
    client.handle('DataTransfer', answer ?? (() => new Promise(() => undefined)));
    await waitFor(`${identity} registered`, async () => (await other.service.getPresence(identity))?.nodeId === app.service.nodeId);
    await waitFor(`${identity} seen by busy`, async () => (await busy.service.getPresence(identity))?.nodeId === app.service.nodeId);
  }

  it('still gets the answer to its own cross-node call', async () => {
    await chargerOn(busy, 'SLOW-1', null);
    await chargerOn(busy, 'SLOW-2', null);
    await chargerOn(other, 'FAST', () => ({ status: 'Accepted', data: 'fast' }));

    // Fill the busy node's maxInFlight with commands that wait far longer than its own call below.
    for (const identity of ['SLOW-1', 'SLOW-2']) {
      held.push(other.service.sendToClient(identity, 'DataTransfer', { vendorId: 'slow' }, { timeoutMs: 60_000 }).catch(() => undefined));
    }
    await waitFor('busy node at maxInFlight', async () => (await busy.service.metrics()).adapter.inFlightHandlers === 2);

    // Before replies had a stream of their own, this answer queued behind the held commands and the call timed out.
    await expect(busy.service.sendToClient('FAST', 'DataTransfer', { vendorId: 'fast' }, { timeoutMs: 10_000 })).resolves.toEqual({
      status: 'Accepted',
      data: 'fast',
    });
  });
});
