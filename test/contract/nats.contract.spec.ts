import { SILENT_LOGGER } from '../../lib/cluster/logger.js';
import { NatsTransport } from '../../lib/nats/nats-transport.js';
import { startNatsServer, stopAllNatsServers, type NatsServer } from '../support/nats-server.js';
import { eventAdapterContract } from './event-adapter.contract.js';

let server: NatsServer;
eventAdapterContract('the NATS JetStream transport', {
  setUp: async () => void (server = await startNatsServer()),
  tearDown: stopAllNatsServers,
  adapter: () => new NatsTransport({ servers: server.url, nodeTtlMs: 1_500, takeoverIntervalMs: 200, logger: SILENT_LOGGER }),
  crash: async (adapter) => (adapter as NatsTransport).abort(),
  deathWithinMs: 10_000,
});
