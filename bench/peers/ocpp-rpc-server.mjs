// ocpp-rpc 2.2.1: RPCServer with its defaults (30 s pings, strict mode per BENCH_STRICT). No clustering.
import process from 'node:process';
import { RPCServer } from 'ocpp-rpc';
import { HANDLED_ACTIONS, announceReady, listenWithBacklog, measureMemory, replyFor, serveIpc, stopAndExit } from './common.mjs';

const strict = process.env.BENCH_STRICT !== '0';
const clients = new Map();
// ocpp-rpc's strict mode fails every 2.1 call, so 2.1 is not offered.
const server = new RPCServer({ protocols: ['ocpp1.6', 'ocpp2.0.1'], strictMode: strict });

server.on('client', (client) => {
  clients.set(client.identity, client);
  for (const action of HANDLED_ACTIONS) client.handle(action, () => replyFor(action, client.protocol));
  client.once('close', () => {
    if (clients.get(client.identity) === client) clients.delete(client.identity);
  });
});

const httpServer = await listenWithBacklog(server.handleUpgrade);
serveIpc({
  memory: async () => ({ ...(await measureMemory()), connections: clients.size }),
  localCount: () => clients.size,
  stop: () =>
    stopAndExit(async () => {
      await server.close({ force: true, awaitPending: false });
      httpServer.closeAllConnections();
      await new Promise((resolve) => httpServer.close(resolve));
    }),
});
announceReady({ port: httpServer.address().port });
