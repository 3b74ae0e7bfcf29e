import { afterAll, beforeAll } from '@jest/globals';
import { SILENT_LOGGER } from '../../lib/cluster/logger.js';
import { NatsTransport } from '../../lib/nats/nats-transport.js';
import { startNatsServer, stopAllNatsServers, type NatsServer } from './nats-server.js';
import { FakeLocalRegistry, type Inbox } from './redis-fixtures.js';

/**
 * One `nats-server -js` per spec file and the transports a test started on it (names under
 * `prefix`, a 1.5 s node TTL): every transport is disconnected and the server stopped after all.
 */
export function natsTestBed(prefix: string) {
  const transports: NatsTransport[] = [];
  const bed = {
    server: undefined as unknown as NatsServer,
    /** Connects a node; with `inbox` it reads its lanes into it, as the router does. */
    async transport(nodeId: string, inbox?: Inbox): Promise<NatsTransport> {
      const transport = new NatsTransport({ servers: bed.server.url, prefix, nodeTtlMs: 1_500, logger: SILENT_LOGGER });
      transports.push(transport);
      await transport.connect(nodeId, new FakeLocalRegistry(nodeId));
      if (inbox) await transport.subscribe('node', inbox.handler);
      return transport;
    },
  };
  beforeAll(async () => {
    bed.server = await startNatsServer();
  }, 30_000);
  afterAll(async () => {
    await Promise.all(transports.map((transport) => transport.disconnect().catch(() => undefined)));
    await stopAllNatsServers();
  });
  return bed;
}
