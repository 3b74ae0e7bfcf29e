// The floor: a bare `ws` server doing the least an OCPP-J CSMS must do (parse the frame,
// answer the CALL). No validation, no routing, no pings.
import process from 'node:process';
import { WebSocketServer } from 'ws';
import { announceReady, listenWithBacklog, measureMemory, replyFor, serveIpc, stopAndExit } from './common.mjs';

const clients = new Map();
const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  clientTracking: false,
  handleProtocols: (offered) => [...offered][0] ?? false,
});

wss.on('connection', (ws, request) => {
  const identity = decodeURIComponent(request.url.split('/').pop());
  const protocol = ws.protocol;
  clients.set(identity, ws);
  ws.on('message', (data) => {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (Array.isArray(message) && message[0] === 2) ws.send(JSON.stringify([3, message[1], replyFor(message[2], protocol)]));
  });
  ws.on('close', () => {
    if (clients.get(identity) === ws) clients.delete(identity);
  });
});

const httpServer = await listenWithBacklog((request, socket, head) => {
  wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
});
serveIpc({
  memory: async () => ({ ...(await measureMemory()), connections: clients.size }),
  localCount: () => clients.size,
  setIdentities: () => 0,
  stop: () =>
    stopAndExit(
      () =>
        new Promise((resolve) => {
          for (const ws of clients.values()) ws.terminate();
          httpServer.closeAllConnections();
          httpServer.close(() => resolve());
        }),
    ),
});
announceReady({ port: httpServer.address().port, pid: process.pid });
