// ocpp-ws-io 2.3.2: one OCPPServer node, with its RedisAdapter (blocking connection on, its
// best setup) when BENCH_REDIS_URL is set. Logging off; strict mode per BENCH_STRICT.
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import Redis from 'ioredis';
import { OCPPServer } from 'ocpp-ws-io';
import { RedisAdapter } from 'ocpp-ws-io/adapters/redis';
import {
  HANDLED_ACTIONS,
  announceReady,
  listenWithBacklog,
  measureMemory,
  replyFor,
  runCalls,
  serveIpc,
  stopAndExit,
} from './common.mjs';

const strict = process.env.BENCH_STRICT !== '0';
const redisUrl = process.env.BENCH_REDIS_URL;
const server = new OCPPServer({ protocols: ['ocpp1.6', 'ocpp2.0.1', 'ocpp2.1'], strictMode: strict, logging: false });
let adapter = null;
const redisClients = [];

server.on('client', (client) => {
  for (const action of HANDLED_ACTIONS) client.handle(action, () => replyFor(action, client.protocol));
});

if (redisUrl) {
  const pubClient = new Redis(redisUrl);
  const subClient = pubClient.duplicate();
  const blockingClient = pubClient.duplicate();
  redisClients.push(pubClient, subClient, blockingClient);
  for (const client of redisClients) client.on('error', () => undefined);
  adapter = new RedisAdapter({ pubClient, subClient, blockingClient });
  await server.setAdapter(adapter);
}

const httpServer = await listenWithBacklog(server.handleUpgrade);
let identities = [];
// Identities not yet seen in presence since the last reset (polling only these keeps the probe light).
let missing = [];

serveIpc({
  memory: async () => ({ ...(await measureMemory()), connections: server.clients.size }),
  localCount: () => server.clients.size,
  setIdentities: (message) => {
    identities = message.identities;
    missing = [...identities];
    return identities.length;
  },
  resetPresence: () => {
    missing = [...identities];
    return missing.length;
  },
  presenceCount: async () => {
    if (!adapter) {
      missing = missing.filter((identity) => !server.hasLocalClient(identity));
    } else {
      const owners = await adapter.getPresenceBatch(missing);
      missing = missing.filter((_, index) => !owners[index]);
    }
    return identities.length - missing.length;
  },
  call: (message) => server.sendToClient(message.identity, message.action, message.payload, { timeoutMs: message.timeoutMs }),
  crossNodeCalls: (message) =>
    runCalls((identity) => server.sendToClient(identity, message.action, message.payload, { timeoutMs: message.timeoutMs }), message),
  broadcastBatch: async (message) => {
    const startedAt = performance.now();
    const outcomes = await server.broadcastBatch(identities, message.action, message.payload, { timeoutMs: message.timeoutMs });
    const durationMs = performance.now() - startedAt;
    const list = Array.isArray(outcomes) ? outcomes : [];
    return { durationMs, outcomes: list.length, fulfilled: list.filter((o) => o?.status === 'fulfilled').length, rejected: 0, errorKinds: {} };
  },
  stop: () =>
    stopAndExit(async () => {
      await server.close({ force: true }).catch(() => undefined);
      httpServer.closeAllConnections();
      await new Promise((resolve) => httpServer.close(resolve));
      for (const client of redisClients) client.disconnect();
    }),
});
announceReady({ port: httpServer.address().port });
