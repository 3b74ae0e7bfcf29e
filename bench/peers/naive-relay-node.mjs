// The floor for cross-node commands: the naive per-command relay of issue 13. Each node owns one
// Redis stream (`relay:<nodeId>`) read through a consumer group. Node A appends each command to
// B's stream (XADD); B reads it (XREADGROUP), writes the frame A built to the charger's socket;
// the charger answers; B appends the raw answer to A's stream (XADD) and acknowledges the command
// (XACK); A reads the answer, acknowledges it (XACK) and settles the caller. ioredis
// auto-pipelining; no OCPP parsing beyond the answer's message id; no presence (A is told which
// node holds the chargers: BENCH_RELAY_PEER); a timer per call (as every peer has a timeout).
import process from 'node:process';
import Redis from 'ioredis';
import { WebSocketServer } from 'ws';
import { announceReady, listenWithBacklog, replyFor, runCalls, serveIpc, stopAndExit } from './common.mjs';

const nodeId = process.env.BENCH_NODE_ID || 'relay';
const peerId = process.env.BENCH_RELAY_PEER || 'bench-b';
const redisUrl = process.env.BENCH_REDIS_URL;
if (!redisUrl) throw new Error('naive relay: BENCH_REDIS_URL is required');

const GROUP = 'relay';
const streamOf = (node) => `relay:${node}`;
const ownStream = streamOf(nodeId);
const redis = new Redis(redisUrl, { enableAutoPipelining: true });
const reader = new Redis(redisUrl);
for (const client of [redis, reader]) client.on('error', () => undefined);
await redis.xgroup('CREATE', ownStream, GROUP, '$', 'MKSTREAM').catch((error) => {
  if (!String(error?.message).includes('BUSYGROUP')) throw error;
});

// ---- B's side: chargers' sockets, commands written to them, answers relayed back.
const sockets = new Map();
/** Message id of a relayed command → where its answer goes and which entry to acknowledge. */
const relayed = new Map();
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false, handleProtocols: (offered) => [...offered][0] ?? false });
wss.on('connection', (ws, request) => {
  const identity = decodeURIComponent(request.url.split('/').pop());
  const protocol = ws.protocol;
  sockets.set(identity, ws);
  ws.on('message', (data) => {
    const text = data.toString();
    if (text.charCodeAt(1) === 50 /* '2': the charger's own CALL (boot) */) {
      const message = JSON.parse(text);
      ws.send(JSON.stringify([3, message[1], replyFor(message[2], protocol)]));
      return;
    }
    const open = text.indexOf('"');
    const id = text.slice(open + 1, text.indexOf('"', open + 1));
    const route = relayed.get(id);
    if (!route) return;
    relayed.delete(id);
    void redis.xadd(streamOf(route.from), '*', 'm', text);
    void redis.xack(ownStream, GROUP, route.entry);
  });
  ws.on('close', () => {
    if (sockets.get(identity) === ws) sockets.delete(identity);
  });
});

// ---- A's side: callers waiting for answers.
const pending = new Map();
let nextId = 1;
function call(identity, action, payload, { timeoutMs }) {
  const id = `${nodeId}-${nextId++}`;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pending.delete(id);
      reject(Object.assign(new Error('timeout'), { code: 'Timeout' }));
    }, timeoutMs);
    pending.set(id, { resolve, reject, timer });
    redis.xadd(streamOf(peerId), '*', 'f', nodeId, 'i', id, 't', identity, 'm', `[2,"${id}","${action}",${JSON.stringify(payload)}]`).catch((error) => {
      clearTimeout(timer);
      pending.delete(id);
      reject(error);
    });
  });
}

function onEntry(entryId, fields) {
  const get = (name) => fields[fields.indexOf(name) + 1];
  if (fields[0] === 'f') {
    // A command for a charger on this node.
    const ws = sockets.get(get('t'));
    if (!ws) {
      void redis.xack(ownStream, GROUP, entryId);
      return;
    }
    relayed.set(get('i'), { from: get('f'), entry: entryId });
    ws.send(get('m'));
    return;
  }
  // An answer to one of this node's commands.
  void redis.xack(ownStream, GROUP, entryId);
  const message = JSON.parse(get('m'));
  const waiter = pending.get(message[1]);
  if (!waiter) return;
  pending.delete(message[1]);
  clearTimeout(waiter.timer);
  if (message[0] === 3) waiter.resolve(message[2]);
  else waiter.reject(Object.assign(new Error(String(message[3])), { code: message[2] }));
}

let running = true;
async function readLoop() {
  while (running) {
    let batches;
    try {
      batches = await reader.xreadgroup('GROUP', GROUP, nodeId, 'COUNT', 1000, 'BLOCK', 1000, 'STREAMS', ownStream, '>');
    } catch {
      if (!running) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    if (!batches) continue;
    for (const [, entries] of batches) for (const [entryId, fields] of entries) onEntry(entryId, fields);
  }
}
void readLoop();

const httpServer = await listenWithBacklog((request, socket, head) => {
  wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
});
let identities = [];
serveIpc({
  localCount: () => sockets.size,
  setIdentities: (message) => {
    identities = message.identities;
    return identities.length;
  },
  // No presence: A is told where the chargers are.
  presenceCount: () => identities.length,
  call: (message) => call(message.identity, message.action, message.payload, { timeoutMs: message.timeoutMs }),
  crossNodeCalls: (message) => runCalls((identity) => call(identity, message.action, message.payload, { timeoutMs: message.timeoutMs }), message),
  stop: () =>
    stopAndExit(async () => {
      running = false;
      for (const ws of sockets.values()) ws.terminate();
      httpServer.closeAllConnections();
      await new Promise((resolve) => httpServer.close(resolve));
      redis.disconnect();
      reader.disconnect();
    }),
});
announceReady({ port: httpServer.address().port });
