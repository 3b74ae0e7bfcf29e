import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { SILENT_LOGGER } from '../../lib/cluster/logger.js';
import { NatsTransport } from '../../lib/nats/nats-transport.js';
import { ClusterUnavailableError, InvalidOptionsError } from '../../lib/protocol/errors.js';
import { startNatsServer, stopAllNatsServers, type NatsServer } from '../support/nats-server.js';

const NO_PRESENCE = { localPresence: () => [] };

describe('the NATS transport and its connection', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startNatsServer();
  }, 30_000);
  afterAll(stopAllNatsServers, 30_000);

  it('never closes a connection the user gave it, on disconnect or abort', async () => {
    const userConnection: NatsConnection = await connect({ servers: server.url });
    try {
      const left = new NatsTransport({ connection: userConnection, logger: SILENT_LOGGER });
      await left.connect('user-conn-1', NO_PRESENCE);
      await left.subscribe('node', () => undefined);
      await left.subscribe('allNodes', () => undefined);
      await left.disconnect();
      expect(userConnection.isClosed()).toBe(false);
      const crashed = new NatsTransport({ connection: userConnection, logger: SILENT_LOGGER });
      await crashed.connect('user-conn-2', NO_PRESENCE);
      crashed.abort();
      expect(userConnection.isClosed()).toBe(false);
      await userConnection.rtt();
    } finally {
      await userConnection.close();
    }
  });

  it('closes the connection it built itself', async () => {
    const transport = new NatsTransport({ servers: server.url, logger: SILENT_LOGGER });
    await transport.connect('own-conn', NO_PRESENCE);
    const own = transport.connection!;
    await transport.disconnect();
    expect(own.isClosed()).toBe(true);
  });

  it('refuses bad options with a typed error naming the option', () => {
    expect(() => new NatsTransport({} as never)).toThrow(InvalidOptionsError);
    expect(() => new NatsTransport({ servers: server.url, connection: {} as NatsConnection })).toThrow(/exactly one of connection and servers/);
    expect(() => new NatsTransport({ servers: server.url, prefix: 'a.b' })).toThrow(/"prefix"/);
    expect(() => new NatsTransport({ servers: server.url, nodeTtlMs: 10 })).toThrow(/"nodeTtlMs"/);
    expect(() => new NatsTransport({ servers: [] })).toThrow(/"servers"/);
  });

  it('says which server it could not reach when it cannot join', async () => {
    const stopped = await startNatsServer();
    const url = stopped.url;
    await stopped.stop();
    const transport = new NatsTransport({ servers: url, logger: SILENT_LOGGER, connectionOptions: { maxReconnectAttempts: 0, timeout: 1000 } });
    const joining = transport.connect('unreachable', NO_PRESENCE);
    await expect(joining).rejects.toThrow(ClusterUnavailableError);
    await expect(joining).rejects.toThrow(url);
  });
});
