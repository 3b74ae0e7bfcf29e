import { describe, expect, it } from '@jest/globals';
import { WebSocket } from 'ws';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:http';
import { HandlerRegistry } from '../../lib/cluster/handler-registry.js';
import { InMemoryAdapter, InMemoryBus } from '../../lib/cluster/in-memory-adapter.js';
import type { ClusterMessage } from '../../lib/cluster/envelope.js';
import { SILENT_LOGGER } from '../../lib/cluster/logger.js';
import { createNode } from '../../lib/create-node.js';
import { resolveOptions } from '../../lib/resolve-options.js';
import { waitFor } from '../support/wait.js';
import { inboxOf } from '../../lib/cluster/address.js';

describe('a command that reaches the owner after its deadline', () => {
  it('is answered "timed out, never sent" and never written to the charge point', async () => {
    const bus = new InMemoryBus();
    const http = createServer();
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const host = createNode({ options: resolveOptions({ nodeId: 'owner', pingIntervalMs: 0 }), adapter: new InMemoryAdapter(bus), handlers: new HandlerRegistry(), logger: SILENT_LOGGER });
    await host.start(http);
    const owner = host.node;
    const frames: string[] = [];
    const charger = new WebSocket(`ws://127.0.0.1:${(http.address() as AddressInfo).port}/ocpp/LATE-1`, 'ocpp1.6');
    charger.on('message', (data) => frames.push(data.toString()));
    await new Promise((resolve) => charger.once('open', resolve));
    await waitFor('charger registered', () => owner.listLocal().length === 1);

    const caller = new InMemoryAdapter(bus);
    const replies: ClusterMessage[] = [];
    await caller.connect('caller', { localPresence: () => [] });
    await caller.subscribe('node', (message) => {
      replies.push(message);
    });
    await caller.publish(inboxOf('owner'), {
      kind: 'command',
      id: 'late-1',
      origin: 'caller',
      identity: 'LATE-1',
      action: 'Reset',
      payload: { type: 'Hard' },
      deadline: Date.now() - 1,
    });
    await waitFor('the reply', () => replies.length === 1);
    expect(replies[0]).toMatchObject({ kind: 'reply', id: 'late-1', outcome: { status: 'timeout', sent: false } });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(frames).toEqual([]);

    charger.terminate();
    await caller.disconnect();
    await host.stop();
    await new Promise((resolve) => http.close(resolve));
  });
});
