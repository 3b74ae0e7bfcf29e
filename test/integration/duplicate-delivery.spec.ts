import { afterAll, describe, expect, it } from '@jest/globals';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:http';
import { inboxOf } from '../../lib/cluster/address.js';
import type { ClusterMessage, CommandEnvelope } from '../../lib/cluster/envelope.js';
import { HandlerRegistry } from '../../lib/cluster/handler-registry.js';
import { InMemoryAdapter, InMemoryBus } from '../../lib/cluster/in-memory-adapter.js';
import { SILENT_LOGGER } from '../../lib/cluster/logger.js';
import { createNode } from '../../lib/create-node.js';
import type { EventAdapterInterface } from '../../lib/cluster/event-adapter.interface.js';
import { RedisAdapter } from '../../lib/redis/redis-adapter.js';
import { resolveOptions } from '../../lib/resolve-options.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import { openAnsweringCharger } from '../support/cluster-node.js';
import { sleep, waitFor } from '../support/wait.js';

/**
 * A transport may hand the same delivery over twice: JetStream does after a server crash that
 * lost the consumer's acknowledgements (seen in `npm run chaos -- --transport nats`: one command
 * reached its charger twice, 0.7 s apart). The copy must not run again; a forward back to the
 * node (one hop more) is a new delivery and must. On Redis a write retried after its reply was
 * lost (a failover, a reconnect) appends the same command twice: two entries, one command id.
 */
interface Transports {
  host(): Promise<EventAdapterInterface>;
  caller(): Promise<EventAdapterInterface>;
}

function inMemory(): Transports {
  const bus = new InMemoryBus();
  return { host: async () => new InMemoryAdapter(bus), caller: async () => new InMemoryAdapter(bus) };
}

function onRedis(): Transports {
  const server = startRedisServer();
  const adapter = async () => new RedisAdapter({ url: (await server).url, logger: SILENT_LOGGER });
  return { host: adapter, caller: adapter };
}

afterAll(() => stopAllRedisServers());

describe.each([
  ['in memory', inMemory],
  ['on Redis (two entries of one command)', onRedis],
])('the same command delivered twice to its owner, %s', (_name, transports) => {
  it('reaches the charge point once and is answered once; a forward of it (one hop more) still runs', async () => {
    const bus = transports();
    const http = createServer();
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const host = createNode({ options: resolveOptions({ nodeId: 'owner', pingIntervalMs: 0 }), adapter: await bus.host(), handlers: new HandlerRegistry(), logger: SILENT_LOGGER });
    await host.start(http);
    const charger = await openAnsweringCharger(`ws://127.0.0.1:${(http.address() as AddressInfo).port}/ocpp/DUP-1`);
    await waitFor('charger registered', () => host.node.listLocal().length === 1);

    const caller = await bus.caller();
    const replies: ClusterMessage[] = [];
    await caller.connect('caller', { localPresence: () => [] });
    await caller.subscribe('node', (message) => {
      replies.push(message);
    });
    const command: CommandEnvelope = {
      kind: 'command',
      id: 'dup-1',
      origin: 'caller',
      identity: 'DUP-1',
      action: 'DataTransfer',
      payload: { vendorId: 'dup' },
      deadline: Date.now() + 10_000,
    };
    await caller.publish(inboxOf('owner'), command);
    await caller.publish(inboxOf('owner'), command);
    await waitFor('the reply', () => replies.length >= 1);
    await sleep(300);
    expect(charger.received).toHaveLength(1);
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ kind: 'reply', id: 'dup-1', outcome: { status: 'result' } });

    // The same call forwarded back here by a node its charger had moved to: one hop more, a new delivery.
    await caller.publish(inboxOf('owner'), { ...command, hops: 1 });
    await waitFor('the forward to be answered', () => replies.length === 2);
    expect(charger.received).toHaveLength(2);

    charger.socket.terminate();
    await caller.disconnect();
    await host.stop();
    await new Promise((resolve) => http.close(resolve));
  });
});
